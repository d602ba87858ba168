"""URLs of this collection area (included by profiles.urls)."""

from __future__ import annotations

from django.urls import path

from profiles.bulk_views import collect_bulk

urlpatterns = [
    path("collect/bulk/<str:stream>", collect_bulk, name="collect-bulk"),
]
