"""Every URL of the connectors app; cdp_site.urls includes this at the root."""

from __future__ import annotations

from django.urls import include, path

from connectors import views

page_patterns = [
    path("jobs/", views.job_list, name="jobs"),
    path("jobs/new/", views.job_new, name="new"),
    path("jobs/<int:pk>/", views.job_detail, name="job"),
    path("jobs/<int:pk>/<slug:action>/", views.job_action, name="action"),
    path("authorizations/", views.authorization_list, name="authorizations"),
]

urlpatterns = [
    path("connectors/", include((page_patterns, "connectors"))),
    path("api/v1/", include("connectors.api.urls")),
]
