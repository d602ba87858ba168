"""URLs of this collection area (included by profiles.urls)."""

from __future__ import annotations

urlpatterns: list = []
