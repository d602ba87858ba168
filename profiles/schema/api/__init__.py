"""The schema API under /api/v1/schema/."""
