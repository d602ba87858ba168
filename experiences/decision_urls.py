"""The decision APIs: POST /api/v1/decide (native) and OFREP (/ofrep/v1/...)."""

from __future__ import annotations

from django.urls import path

from experiences import decision_views

urlpatterns = [
    path("api/v1/decide", decision_views.decide_view, name="decide"),
    path("ofrep/v1/evaluate/flags", decision_views.ofrep_bulk, name="ofrep-bulk"),
    path("ofrep/v1/evaluate/flags/<path:key>", decision_views.ofrep_flag, name="ofrep-flag"),
]
