"""The profiles API (included under /api/v1/ by profiles.urls)."""

from __future__ import annotations

from django.urls import include, path, re_path
from rest_framework.routers import SimpleRouter

from profiles.api import views


class OptionalSlashRouter(SimpleRouter):
    """Paths match with or without the trailing slash (``/streams/web/ingress?period=7d``)."""

    def __init__(self) -> None:
        super().__init__()
        self.trailing_slash = "/?"


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
