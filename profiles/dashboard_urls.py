"""The dashboard page, mounted at /dashboard/ by profiles.urls (namespace ``dashboard``)."""

from __future__ import annotations

from django.urls import path

from profiles import dashboard_views as views

app_name = "dashboard"

urlpatterns = [
    path("", views.dashboard, name="home"),
]
