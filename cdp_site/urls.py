"""The site's URL map: the shell's own pages, the admin, the API schema, then each app's
``urls.py`` (DESIGN.md: the URL map is the one place cdp_site names the apps)."""

from __future__ import annotations

from csp.decorators import csp_exempt
from django.contrib import admin
from django.templatetags.static import static
from django.urls import include, path, re_path
from django.utils.functional import lazy
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from cdp_site import health, views
from cdp_site.api import errors

handler404 = "cdp_site.views.page_not_found"
handler500 = "cdp_site.views.server_error"

urlpatterns = [
    path("", views.home, name="home"),
    path("health/", health.health, name="health"),
    path("favicon.ico", RedirectView.as_view(
        url=lazy(static, str)("strata/favicon.svg"), permanent=True)),
    path("account/switch/", views.switch_account_view, name="switch-account"),
    path("invitations/<str:secret>/", views.accept_invitation, name="accept-invitation"),
    path("admin/", admin.site.urls),
    re_path(r"^api/schema/?$", SpectacularAPIView.as_view(), name="api-schema"),
    # Swagger UI starts with an inline script drf-spectacular writes: no CSP there.
    re_path(r"^api/docs/?$", csp_exempt()(SpectacularSwaggerView.as_view(url_name="api-schema")),
            name="api-docs"),
    path("api/v1/", include("cdp_site.api.urls")),
    path("", include("profiles.urls")),
    path("", include("audiences.urls")),
    path("", include("experiences.urls")),
    path("", include("connectors.urls")),
    re_path(r"^api/", errors.not_found_view),
]
