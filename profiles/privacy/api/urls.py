"""The privacy API: /api/v1/privacy-requests/ and /api/v1/consent-purposes/."""

from __future__ import annotations

from django.urls import include, path, re_path

from cdp_site.api.routers import OptionalSlashRouter
from profiles.privacy.api import views

router = OptionalSlashRouter()
router.register("privacy-requests", views.PrivacyRequestViewSet, basename="privacy-request")
router.register("consent-purposes", views.ConsentPurposeViewSet, basename="consent-purpose")

urlpatterns = [
    re_path(r"^profile-retention/?$", views.ProfileRetentionView.as_view(),
            name="profile-retention"),
    path("", include(router.urls)),
]
