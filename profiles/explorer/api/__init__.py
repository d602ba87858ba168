"""The explorer's API under /api/v1/: streams and raw keys, failed events, tracking plans,
notices and usage."""
