"""Profiles: everything from an event's arrival to the unified person (DESIGN.md, the lowest
app after cdp_site). It may import cdp_site only; the apps downstream of it (audiences,
experiences, connectors, demo) reach in through settings hooks (``STRATA_PIPELINE_STEPS``,
``STRATA_PROFILE_DELETED_HOOKS``...), never by import.

One Django app (label ``profiles``, one ``models.py``), in areas:

- ``collection/``: the public intake paths, the raw store and what guards it;
- ``explorer/``: the aggregator, the stream explorer, failed events, usage and the dashboard;
- ``schema/``: fields, mappings and route rules, drafts and versions, merge operators, the
  expression language;
- ``processing/``: the pipeline that turns raw events into profiles, identity resolution,
  rebuilds, consent;
- ``calculated/``: calculated attributes;
- at the root, what is about profiles themselves: ``selectors`` (reads), ``masking`` (PII),
  ``gdpr`` (delete), ``conditions`` (the rule core: operators and value kinds that audiences
  extend), the profile pages (``views``, ``urls``) and the profile API (``api/``).
"""
