"""The profiles API (included under /api/v1/ by profiles.urls)."""

from __future__ import annotations

from django.urls import include, path, re_path
from rest_framework.routers import SimpleRouter

from profiles.api import calculated_views, schema_views, views


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
router.register("calculated-attributes", calculated_views.CalculatedAttributeViewSet,
                basename="calculated-attribute")

keys = OptionalSlashRouter()
keys.register("keys", views.RawKeyViewSet, basename="raw-key")

schema = OptionalSlashRouter()  # /schema/…: the draft, versions (profiles.api.schema_views)
schema.register("fields", schema_views.FieldViewSet, basename="schema-field")
schema.register("mappings", schema_views.MappingViewSet, basename="schema-mapping")
schema.register("route-rules", schema_views.RouteRuleViewSet, basename="schema-route-rule")
schema.register("versions", schema_views.SchemaVersionViewSet, basename="schema-version")

urlpatterns = [
    re_path(r"^schema/validate/?$", schema_views.ValidateView.as_view(), name="schema-validate"),
    re_path(r"^schema/diff/?$", schema_views.DiffView.as_view(), name="schema-diff"),
    re_path(r"^schema/publish/?$", schema_views.PublishView.as_view(), name="schema-publish"),
    re_path(r"^schema/evaluate/?$", schema_views.EvaluateView.as_view(), name="schema-evaluate"),
    re_path(r"^schema/rebuild/?$", schema_views.RebuildView.as_view(), name="schema-rebuild"),
    path("schema/", include(schema.urls)),
    re_path(r"^usage/?$", views.UsageView.as_view(), name="usage"),
    path("streams/<slug:stream>/", include(keys.urls)),
    path("", include("profiles.api.profile_urls")),  # /profiles/…: the profile API
    path("", include(router.urls)),
]
