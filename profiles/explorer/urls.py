"""The explorer's pages: the dashboard (/dashboard/, namespace ``dashboard``), the stream
explorer (/streams/, namespace ``streams``), failed events and account usage. Failed events
and usage live at /failed-events/ and /usage/, outside /streams/, so no stream name can
shadow them. Mounted at the site root by profiles.urls."""

from __future__ import annotations

from django.urls import include, path

from profiles.explorer.views import dashboard, streams

dashboard_patterns = [
    path("", dashboard.dashboard, name="home"),
]

stream_patterns = [
    path("", streams.stream_list, name="list"),
    path("<slug:name>/", streams.stream_detail, name="detail"),
    path("<slug:name>/keys/", streams.stream_keys, name="keys"),
    path("<slug:name>/keys/visibility/", streams.key_visibility, name="key-visibility"),
    path("<slug:name>/live/", streams.stream_live, name="live"),
    path("<slug:name>/live/events/", streams.stream_live_events, name="live-events"),
]

urlpatterns = [
    path("dashboard/", include((dashboard_patterns, "dashboard"))),  # every role's home
    path("streams/", include((stream_patterns, "streams"))),
    path("failed-events/", streams.failed_events, name="explorer-failed-events"),
    path("failed-events/<int:pk>/", streams.failed_event_detail,
         name="explorer-failed-event"),
    path("usage/", streams.usage_page, name="explorer-usage"),
    path("usage/notices/<int:pk>/resolve/", streams.resolve_notice,
         name="explorer-resolve-notice"),
]
