"""The management API of the site: accounts, tokens, write keys, members, roles, the audit log
(DRF views and serializers). Imports cdp_site only."""
