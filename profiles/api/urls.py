"""The profiles API (included under /api/v1/ by profiles.urls)."""

from __future__ import annotations

urlpatterns: list = []
