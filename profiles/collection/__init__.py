"""Collection: every path an event arrives by (Segment-spec API, the Lytics tag, JSON, bulk,
strata.js) and the raw store it is kept in before any answer.

``store`` is the core all paths share (limits, times, the durable INSERT, failed events);
``segment`` and ``lytics`` parse their formats; ``intake`` reads HTTP bodies; ``bulk`` streams
files with COPY; ``plans`` checks tracking plans; ``partitions`` keeps the raw store's
partitions; ``usage`` counts and enforces quotas; ``middleware`` skips what collection
requests do not need; ``views/`` and ``urls`` are the endpoints. May import cdp_site and
``profiles.models``; nothing here knows of processing.
"""
