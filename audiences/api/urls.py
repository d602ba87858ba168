"""The audiences API (under /api/v1/): audiences, members, sizes, validate and estimate."""

from __future__ import annotations

from django.urls import include, path
from rest_framework.routers import SimpleRouter

from audiences.api import views

router = SimpleRouter()  # paths end with a slash
router.register("audiences", views.AudienceViewSet, basename="audience")

urlpatterns = [path("", include(router.urls))]
