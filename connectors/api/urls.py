"""The connectors management API (under /api/v1/)."""

from __future__ import annotations

from django.urls import include, path
from rest_framework.routers import SimpleRouter

from connectors.api import views

router = SimpleRouter()  # paths end with a slash
router.register("authorizations", views.AuthorizationViewSet, basename="authorization")
router.register("jobs", views.JobViewSet, basename="job")

urlpatterns = [
    path("connector-kinds/", views.KindListView.as_view(), name="connector-kinds"),
    path("connector-settings/", views.ConnectorSettingsView.as_view(),
         name="connector-settings"),
    path("", include(router.urls)),
]
