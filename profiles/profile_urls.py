"""The profile pages, mounted at /profiles/ by profiles.urls (namespace ``profiles``)."""

from __future__ import annotations

from django.urls import path

from profiles import profile_views as views

app_name = "profiles"

urlpatterns = [
    path("", views.profile_search, name="search"),
    path("<int:pk>/", views.profile_detail, name="detail"),
    path("<int:pk>/delete/", views.profile_delete, name="delete"),
]
