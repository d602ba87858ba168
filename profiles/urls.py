"""Every URL of the profiles app, by area; cdp_site.urls includes this at the root. Each area
keeps its own ``urls.py`` (pages) and ``api/urls.py`` (the API under /api/v1/); the profile
pages themselves (/profiles/, namespace ``profiles``) are this module's own."""

from __future__ import annotations

from django.urls import include, path

from profiles import views

profile_patterns = [
    path("", views.profile_search, name="search"),
    path("<int:pk>/", views.profile_detail, name="detail"),
    path("<int:pk>/delete/", views.profile_delete, name="delete"),
]

urlpatterns = [
    # /v1/*, /beacon, /sourceConfig, /c, /cid, /collect/json, /collect/bulk, /strata.js
    path("", include("profiles.collection.urls")),
    # /dashboard/, /streams/, /failed-events/, /usage/
    path("", include("profiles.explorer.urls")),
    path("schema/", include("profiles.schema.urls")),  # fields, mappings, publish, versions
    path("profiles/", include((profile_patterns, "profiles"))),  # profile search and pages
    path("privacy/", include("profiles.privacy.urls")),  # data subject requests
    path("api/v1/", include("profiles.schema.api.urls")),
    path("api/v1/", include("profiles.explorer.api.urls")),
    path("api/v1/", include("profiles.api.urls")),  # /profiles/…: the profile API
    path("api/v1/", include("profiles.calculated.api.urls")),
    path("api/v1/", include("profiles.privacy.api.urls")),  # data subject requests
]
