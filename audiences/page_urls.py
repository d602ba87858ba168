"""Audience pages for marketers (under /audiences/, namespace ``audiences``): the list, the
builder (new and edit), an audience's page, its members as CSV, why a profile is in or not in
it, and a profile's audiences."""

from __future__ import annotations

from django.urls import path

from audiences import pages as views

app_name = "audiences"

urlpatterns = [
    path("", views.audience_list, name="list"),
    path("new/", views.audience_new, name="new"),
    path("builder/values/", views.builder_values, name="builder-values"),
    path("profile/<int:pk>/", views.profile_audiences, name="profile"),
    path("<slug:slug>/", views.audience_detail, name="detail"),
    path("<slug:slug>/edit/", views.audience_edit, name="edit"),
    path("<slug:slug>/members.csv", views.members_csv, name="members-csv"),
    path("<slug:slug>/why/", views.audience_why, name="why"),
]
