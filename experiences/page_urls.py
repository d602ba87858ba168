"""Experience pages for marketers (under /experiences/, namespace ``experiences``): the list,
an experience's page with its results, its actions and an on-demand results snapshot."""

from __future__ import annotations

from django.urls import path

from experiences import pages as views

app_name = "experiences"

urlpatterns = [
    path("", views.experience_list, name="list"),
    path("<str:key>/", views.experience_detail, name="detail"),
    path("<str:key>/snapshot/", views.experience_snapshot, name="snapshot"),
    path("<str:key>/<slug:action>/", views.experience_action, name="action"),
]
