"""django-q2 entry points for the site: thin, they call services."""

from __future__ import annotations

from cdp_site.health import beat


def heartbeat() -> None:
    beat()
