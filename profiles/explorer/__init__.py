"""The explorer: what an account's data looks like as it arrives. ``aggregate`` keeps hourly
counts, raw keys and violations incrementally from the raw store; ``streams`` and
``selectors`` read them; ``dashboard`` is every member's home; ``views/`` are the pages,
``api/`` the API of streams, raw keys, failed events, tracking plans, notices and usage. May
import cdp_site, ``profiles.models``, ``profiles.collection`` and ``profiles.processing`` (for
the processing figures).
"""
