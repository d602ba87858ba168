"""URLs of the public collection paths, mounted at the site root by profiles.urls.

Trailing slashes are optional: clients post to `/v1/batch` and ask for `/sourceConfig/`, and
a redirect would lose a POST body or break a CORS preflight.
"""

from __future__ import annotations

from django.urls import path, re_path

from profiles.collection.views import bulk, tag
from profiles.collection.views import tracking as views

SLUG = r"[-a-zA-Z0-9_]+"

urlpatterns = [
    re_path(r"^v1/(?P<name>identify|track|page|screen|group|alias|batch|import|[itpsgab])/?$",
            views.tracking_api, name="collect-segment"),
    re_path(r"^v1/m/?$", views.client_metrics, name="collect-segment-metrics"),
    re_path(r"^beacon/v1/batch/?$", views.beacon, name="collect-beacon"),
    re_path(r"^sourceConfig/?$", views.source_config, name="collect-source-config"),
    re_path(rf"^c/(?P<aid>{SLUG})/?$", views.tag_collect, name="collect-tag"),
    re_path(rf"^c/(?P<aid>{SLUG})/(?P<stream>{SLUG})/?$", views.tag_collect,
            name="collect-tag-stream"),
    re_path(rf"^cid/(?P<aid>{SLUG})/?$", views.tag_visitor_id, name="collect-tag-id"),
    re_path(r"^collect/json/?$", views.json_collect, name="collect-json-default"),
    re_path(rf"^collect/json/(?P<stream>{SLUG})/?$", views.json_collect, name="collect-json"),
    path("collect/bulk/<str:stream>", bulk.collect_bulk, name="collect-bulk"),
    # strata.js (also served as /static/strata/strata.js by whitenoise)
    path("strata.js", tag.strata_js, name="strata-js"),
]
