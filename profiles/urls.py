"""Every URL of the profiles app, by area; cdp_site.urls includes this at the root."""

from __future__ import annotations

from django.urls import include, path

urlpatterns = [
    # /v1/*, /beacon, /sourceConfig, /c, /cid, /collect/json
    path("", include("profiles.collect_urls")),
    path("", include("profiles.bulk_urls")),  # /collect/bulk/{stream}
    path("", include("profiles.tag_urls")),  # strata.js
    path("dashboard/", include("profiles.dashboard_urls")),  # the product home, every role
    path("streams/", include("profiles.explorer_urls")),  # the stream explorer pages
    path("schema/", include("profiles.schema_urls")),  # fields, mappings, publish, versions
    path("profiles/", include("profiles.profile_urls")),  # profile search and pages
    path("api/v1/", include("profiles.api.urls")),  # streams, raw keys, failed events, plans
]
