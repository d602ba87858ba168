"""Every URL of the audiences app; cdp_site.urls includes this at the root.

The pages (under /audiences/, namespace ``audiences``): the list, the builder (new and edit),
an audience's page, its members as CSV, why a profile is in or not in it, and a profile's
audiences. The API is under /api/v1/ (audiences.api.urls)."""

from __future__ import annotations

from django.urls import include, path

from audiences import views

page_patterns = [
    path("", views.audience_list, name="list"),
    path("new/", views.audience_new, name="new"),
    path("builder/values/", views.builder_values, name="builder-values"),
    path("profile/<int:pk>/", views.profile_audiences, name="profile"),
    path("<slug:slug>/", views.audience_detail, name="detail"),
    path("<slug:slug>/edit/", views.audience_edit, name="edit"),
    path("<slug:slug>/members.csv", views.members_csv, name="members-csv"),
    path("<slug:slug>/why/", views.audience_why, name="why"),
]

urlpatterns = [
    path("audiences/", include((page_patterns, "audiences"))),
    path("api/v1/", include("audiences.api.urls")),
]
