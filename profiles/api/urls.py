"""Routes of the profile API (under /api/v1/, included by profiles.urls).

Field names never start with a digit (profiles.schema.checks.FIELD_NAME), so ``/profiles/42/events``
is always a profile's timeline and never the identifier ``events`` of a field ``42``. The
value of ``/profiles/{field}/{value}`` is the rest of the path, taken exactly as sent
(percent-encoded; it may hold slashes and line breaks: ``a%0Ab``)."""

from __future__ import annotations

from django.urls import re_path

from profiles.api import views

FIELD = r"(?P<field>[A-Za-z_][A-Za-z0-9_]{0,99})"

urlpatterns = [
    re_path(r"^profiles/?$", views.ProfileSearchView.as_view(), name="profile-search"),
    re_path(r"^profiles/(?P<pk>[0-9]{1,18})/?$", views.ProfileByIdView.as_view(),
            name="profile-detail"),
    re_path(r"^profiles/(?P<pk>[0-9]{1,18})/events/?$", views.ProfileEventsView.as_view(),
            name="profile-events"),
    re_path(r"^profiles/(?P<pk>[0-9]{1,18})/identity/?$", views.ProfileIdentityView.as_view(),
            name="profile-identity"),
    re_path(rf"^profiles/{FIELD}/(?P<value>[\s\S]+)$", views.ProfileByIdentifierView.as_view(),
            name="profile-by-identifier"),
]
