"""The Contentstack Personalize Edge API (under /personalize/)."""

from __future__ import annotations

urlpatterns: list = []
