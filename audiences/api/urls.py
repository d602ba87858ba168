"""The audiences API (under /api/v1/): audiences, members, sizes, validate and estimate."""

from __future__ import annotations

from django.urls import include, path

from audiences.api import views
from cdp_site.api.routers import OptionalSlashRouter

router = OptionalSlashRouter()  # with or without the trailing slash
router.register("audiences", views.AudienceViewSet, basename="audience")

urlpatterns = [path("", include(router.urls))]
