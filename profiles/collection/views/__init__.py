"""The collection endpoints: ``tracking`` (Segment-spec, RudderStack, the Lytics tag, JSON),
``bulk`` (NDJSON/CSV uploads), ``tag`` (strata.js). Plain Django views, kept thin."""
