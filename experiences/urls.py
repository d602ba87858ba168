"""Every URL of the experiences app; cdp_site.urls includes this at the root.

The pages (under /experiences/, namespace ``experiences``): the list, an experience's page with
its results, its actions and an on-demand results snapshot; the editor (new, edit and
its dry run). The decision APIs are
experiences.decisions.urls; the management API is under /api/v1/ (experiences.api.urls)."""

from __future__ import annotations

from django.urls import include, path

from experiences import editor_views, profile_views, views

page_patterns = [
    path("", views.experience_list, name="list"),
    path("new/", editor_views.experience_new, name="new"),  # "new" is a reserved key (lifecycle)
    path("_check/", editor_views.editor_check, name="check"),  # keys never start with "_"
    path("profile/<int:pk>/", profile_views.profile_experiences, name="profile"),
    path("<str:key>/edit/", editor_views.experience_edit, name="edit"),
    path("<str:key>/", views.experience_detail, name="detail"),
    path("<str:key>/snapshot/", views.experience_snapshot, name="snapshot"),
    path("<str:key>/reweight/", views.experience_reweight, name="reweight"),
    path("<str:key>/<slug:action>/", views.experience_action, name="action"),
]

urlpatterns = [
    path("", include("experiences.decisions.urls")),  # /api/v1/decide, /ofrep/…, /personalize/…
    path("experiences/", include((page_patterns, "experiences"))),
    path("api/v1/", include("experiences.api.urls")),
]
