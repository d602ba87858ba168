"""The schema: fields, mappings and route rules, edited as a draft and published as immutable
versions that processing compiles (``drafts``), how values of each field type fold
(``merge``), which raw keys the live schema reads (``key_usage``), and the expression language
mappings, guards and route rules are written in (``expressions/``). ``views`` and ``urls`` are
the schema pages, ``api/`` the schema API. May import cdp_site and ``profiles.models``.
"""
