"""The stream explorer's pages, mounted at /streams/ by profiles.urls (namespace ``streams``).
Failed events and usage live at /failed-events/ and /usage/ (cdp_site.urls), so no stream
name can shadow them."""

from __future__ import annotations

from django.urls import path

from profiles import explorer_views as views

app_name = "streams"

urlpatterns = [
    path("", views.stream_list, name="list"),
    path("<slug:name>/", views.stream_detail, name="detail"),
    path("<slug:name>/keys/", views.stream_keys, name="keys"),
    path("<slug:name>/keys/visibility/", views.key_visibility, name="key-visibility"),
    path("<slug:name>/live/", views.stream_live, name="live"),
    path("<slug:name>/live/events/", views.stream_live_events, name="live-events"),
]
