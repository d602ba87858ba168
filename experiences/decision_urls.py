"""The decision APIs: POST /api/v1/decide (native) and OFREP (/ofrep/v1/...)."""

from __future__ import annotations

urlpatterns: list = []
