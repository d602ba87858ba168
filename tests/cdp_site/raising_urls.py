"""A URL map with a view that fails, for the tests of what an error page shows."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.urls import path


def failing_view(request: HttpRequest) -> HttpResponse:
    raise RuntimeError("a failure inside a view")


urlpatterns = [path("fail/", failing_view)]
