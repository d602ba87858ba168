"""Site-wide pieces every app builds on: accounts, users and roles, tokens, write keys, audit,
health, the embedded database and settings. Imports no other Strata app (the URL map and
settings excepted by name in the import-linter contract)."""
