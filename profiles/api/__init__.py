"""The profile API under /api/v1/profiles/ (PROTOCOLS.md §5): read by any identifier or id,
search, timeline, identity, GDPR delete."""
