"""The API's router: every path matches with or without its trailing slash.

DRF's ``SimpleRouter(trailing_slash="/?")`` keeps only ``"/"`` (its constructor accepts
nothing but ``"/"`` or ``""``), so the optional slash is set after construction.
"""

from __future__ import annotations

from rest_framework.routers import SimpleRouter


class OptionalSlashRouter(SimpleRouter):
    """Paths match with or without the trailing slash (``/streams/web/ingress?period=7d``)."""

    def __init__(self) -> None:
        super().__init__()
        self.trailing_slash = "/?"
