"""Processing: raw events become profiles. ``pipeline`` (the runner) claims batches of pending
events and runs the steps named in ``settings.STRATA_PIPELINE_STEPS`` over a ``batch.Batch``:
the profiles steps route, map, identify and merge (``steps``), then the steps of this and
downstream apps; ``batch`` is what they share, below both. ``identity`` resolves identifiers
to profiles by DESIGN.md's rules; ``consent`` records each profile's consent per purpose;
``rebuild`` recomputes an account's profiles from the raw store. May import cdp_site,
``profiles.models``, ``profiles.collection`` and ``profiles.schema``.
"""
