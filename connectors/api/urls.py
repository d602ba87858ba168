"""The connectors management API (under /api/v1/)."""

from __future__ import annotations

from django.urls import include, path, re_path

from cdp_site.api.routers import OptionalSlashRouter
from connectors.api import views

router = OptionalSlashRouter()  # with or without the trailing slash
router.register("authorizations", views.AuthorizationViewSet, basename="authorization")
router.register("jobs", views.JobViewSet, basename="job")

urlpatterns = [
    re_path(r"^connector-kinds/?$", views.KindListView.as_view(), name="connector-kinds"),
    re_path(r"^connector-settings/?$", views.ConnectorSettingsView.as_view(),
            name="connector-settings"),
    path("", include(router.urls)),
]
