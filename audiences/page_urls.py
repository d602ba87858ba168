"""Audience pages for marketers (under /audiences/): list, builder, audience page, why-in."""

from __future__ import annotations

urlpatterns: list = []
