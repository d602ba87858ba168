"""The experiences management API (under /api/v1/): experiences, variants, goals, actions."""

from __future__ import annotations

urlpatterns: list = []
