"""The audiences API (under /api/v1/): audiences, members, sizes, validate and estimate."""

from __future__ import annotations

urlpatterns: list = []
