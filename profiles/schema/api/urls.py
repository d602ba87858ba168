"""The schema API (under /api/v1/schema/): the draft's fields, mappings and route rules, its
validation, diff, dry run and publishing, versions, and profile rebuilds."""

from __future__ import annotations

from django.urls import include, path, re_path

from cdp_site.api.routers import OptionalSlashRouter
from profiles.schema.api import views

schema = OptionalSlashRouter()
schema.register("fields", views.FieldViewSet, basename="schema-field")
schema.register("mappings", views.MappingViewSet, basename="schema-mapping")
schema.register("route-rules", views.RouteRuleViewSet, basename="schema-route-rule")
schema.register("versions", views.SchemaVersionViewSet, basename="schema-version")

urlpatterns = [
    re_path(r"^schema/validate/?$", views.ValidateView.as_view(), name="schema-validate"),
    re_path(r"^schema/diff/?$", views.DiffView.as_view(), name="schema-diff"),
    re_path(r"^schema/publish/?$", views.PublishView.as_view(), name="schema-publish"),
    re_path(r"^schema/evaluate/?$", views.EvaluateView.as_view(), name="schema-evaluate"),
    re_path(r"^schema/rebuild/?$", views.RebuildView.as_view(), name="schema-rebuild"),
    path("schema/", include(schema.urls)),
]
