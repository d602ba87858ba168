"""The schema: fields, mappings and route rules, edited as a draft and published as immutable
versions that processing compiles.

- ``checks``: what makes a schema valid (``Problem``, ``SchemaValidationError``); pure.
- ``drafts``: editing the draft (``save_*`` / ``delete_*``) and the mapping dry run.
- ``versions``: snapshots, diffs, ``publish``, ``revert``, the live version.
- ``compiled``: a version compiled for processing (``live_schema``) and ``event_view``, what
  expressions see of an event.
- ``lytics``: the Lytics use-case schema, installed through the services.
- ``merge``: how values of each field type fold; ``key_usage``: which raw keys the live schema
  reads; ``expressions/``: the language mappings, guards and route rules are written in.
- ``views`` and ``urls`` are the schema pages, ``api/`` the schema API.

Below the pages each module imports only those under it (expressions < merge < checks,
compiled, key_usage < versions < drafts < lytics), cdp_site and ``profiles.models``. Only the
pages and the API reach further: they start rebuilds (``profiles.processing.rebuild``) and the
API masks the dry run (``profiles.masking``).
"""
