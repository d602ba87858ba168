from __future__ import annotations

from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from cdp_site import health, pages, views
from cdp_site.api import errors
from profiles import explorer_views

handler404 = "cdp_site.views.page_not_found"
handler500 = "cdp_site.views.server_error"

urlpatterns = [
    path("", pages.home, name="home"),
    path("health/", health.health, name="health"),
    path("account/switch/", views.switch_account_view, name="switch-account"),
    path("admin/", admin.site.urls),
    path("failed-events/", explorer_views.failed_events, name="explorer-failed-events"),
    path("failed-events/<int:pk>/", explorer_views.failed_event_detail,
         name="explorer-failed-event"),
    path("usage/", explorer_views.usage_page, name="explorer-usage"),
    path("usage/notices/<int:pk>/resolve/", explorer_views.resolve_notice,
         name="explorer-resolve-notice"),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("api/v1/", include("cdp_site.api.urls")),
    path("", include("profiles.urls")),
    path("", include("audiences.urls")),
    path("", include("experiences.urls")),
    re_path(r"^api/", errors.not_found_view),
]
