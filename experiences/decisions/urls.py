"""The decision APIs, mounted at the site root by experiences.urls: POST /api/v1/decide
(native), OFREP (/ofrep/v1/...) and the Contentstack Personalize Edge API (/personalize/...;
docs/personalize.md), whose paths are as @contentstack/personalize-edge-sdk builds them: no
trailing slash."""

from __future__ import annotations

from django.urls import include, path, re_path

from experiences.decisions import personalize, views

personalize_patterns = [
    path("manifest", personalize.manifest, name="personalize-manifest"),
    path("user-attributes", personalize.user_attributes, name="personalize-user-attributes"),
    path("user-attributes/actions/merge", personalize.merge, name="personalize-merge"),
    path("events", personalize.events, name="personalize-events"),
]

urlpatterns = [
    re_path(r"^api/v1/decide/?$", views.decide_view, name="decide"),
    path("ofrep/v1/evaluate/flags", views.ofrep_bulk, name="ofrep-bulk"),
    path("ofrep/v1/evaluate/flags/<path:key>", views.ofrep_flag, name="ofrep-flag"),
    path("personalize/", include(personalize_patterns)),
]
