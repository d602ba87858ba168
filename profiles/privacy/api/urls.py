"""The privacy request API (under /api/v1/privacy-requests/)."""

from __future__ import annotations

from django.urls import include, path

from cdp_site.api.routers import OptionalSlashRouter
from profiles.privacy.api import views

router = OptionalSlashRouter()
router.register("privacy-requests", views.PrivacyRequestViewSet, basename="privacy-request")

urlpatterns = [path("", include(router.urls))]
