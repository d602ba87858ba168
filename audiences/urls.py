"""Every URL of the audiences app; cdp_site.urls includes this at the root."""

from __future__ import annotations

from django.urls import include, path

urlpatterns = [
    path("audiences/", include("audiences.page_urls")),
    path("api/v1/", include("audiences.api.urls")),
]
