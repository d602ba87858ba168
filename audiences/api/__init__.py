"""The audiences API (DRF): CRUD, validate, estimate, members, for-profile."""
