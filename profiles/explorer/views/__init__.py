"""The explorer's pages: ``streams`` (streams, raw keys, live events, failed events, usage)
and ``dashboard``."""
