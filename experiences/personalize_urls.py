"""The Contentstack Personalize Edge API (under /personalize/; experiences.personalize_views,
docs/personalize.md). Paths as @contentstack/personalize-edge-sdk builds them: no trailing
slash."""

from __future__ import annotations

from django.urls import path

from experiences import personalize_views as views

urlpatterns = [
    path("manifest", views.manifest, name="personalize-manifest"),
    path("user-attributes", views.user_attributes, name="personalize-user-attributes"),
    path("user-attributes/actions/merge", views.merge, name="personalize-merge"),
    path("events", views.events, name="personalize-events"),
]
