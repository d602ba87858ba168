"""The experiences management API (under /api/v1/): experiences, variants, goals, actions."""

from __future__ import annotations

from django.urls import include, path

from cdp_site.api.routers import OptionalSlashRouter
from experiences.api import views

router = OptionalSlashRouter()  # with or without the trailing slash
router.register("experiences", views.ExperienceViewSet, basename="experience")
router.register("goals", views.GoalViewSet, basename="goal")

urlpatterns = [path("", include(router.urls))]
