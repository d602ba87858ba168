"""The experiences management API (under /api/v1/): experiences, variants, goals, actions."""

from __future__ import annotations

from django.urls import include, path
from rest_framework.routers import SimpleRouter

from experiences.api import views

router = SimpleRouter()  # paths end with a slash
router.register("experiences", views.ExperienceViewSet, basename="experience")
router.register("goals", views.GoalViewSet, basename="goal")

urlpatterns = [path("", include(router.urls))]
