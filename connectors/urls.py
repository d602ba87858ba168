"""Every URL of the connectors app; cdp_site.urls includes this at the root."""

from __future__ import annotations

from django.urls import include, path

urlpatterns = [
    path("api/v1/", include("connectors.api.urls")),
]
