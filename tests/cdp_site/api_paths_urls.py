"""The site's URL map plus two views the API's error tests need: one that crashes and one plain
Django form view (CSRF checked by Django's middleware, not DRF)."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.urls import path

from cdp_site.urls import handler404, handler500
from cdp_site.urls import urlpatterns as site_patterns

__all__ = ["handler404", "handler500", "urlpatterns"]


def crash(request: HttpRequest) -> HttpResponse:
    raise RuntimeError("a bug with a secret in its message: postgres://user:pw@db/strata")


def plain_form(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok")


urlpatterns = [
    path("api/v1/test-crash", crash),
    path("api/v1/test-plain-form", plain_form),
    path("test-plain-form", plain_form),
    *site_patterns,
]
