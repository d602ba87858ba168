"""The explorer's API (under /api/v1/): streams and their raw keys, failed events, tracking
plans, notices and account usage."""

from __future__ import annotations

from django.urls import include, path, re_path

from cdp_site.api.routers import OptionalSlashRouter
from profiles.explorer.api import views

router = OptionalSlashRouter()
router.register("streams", views.StreamViewSet, basename="stream")
router.register("failed-events", views.FailedEventViewSet, basename="failed-event")
router.register("tracking-plans", views.TrackingPlanViewSet, basename="tracking-plan")
router.register("notices", views.NoticeViewSet, basename="notice")

keys = OptionalSlashRouter()
keys.register("keys", views.RawKeyViewSet, basename="raw-key")

urlpatterns = [
    re_path(r"^usage/?$", views.UsageView.as_view(), name="usage"),
    path("streams/<slug:stream>/", include(keys.urls)),
    path("", include(router.urls)),
]
