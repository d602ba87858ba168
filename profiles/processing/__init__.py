"""Processing: raw events become profiles. ``pipeline`` claims batches of pending events and
runs the steps named in ``settings.STRATA_PIPELINE_STEPS`` (route, map, identify, merge, then
the steps of this and downstream apps); ``identity`` resolves identifiers to profiles by
DESIGN.md's rules; ``consent`` records each profile's consent per purpose; ``rebuild``
recomputes an account's profiles from the raw store. May import cdp_site,
``profiles.models``, ``profiles.collection`` and ``profiles.schema``.
"""
