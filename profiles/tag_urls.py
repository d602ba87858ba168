"""URLs of the web tag: /strata.js (also served as /static/strata/strata.js by whitenoise)."""

from __future__ import annotations

from django.urls import path

from profiles import tag_views

urlpatterns = [
    path("strata.js", tag_views.strata_js, name="strata-js"),
]
