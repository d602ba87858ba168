"""The floor for bench/collect.py's single-event figure: a bare Django JSON view.

A WSGI application with Strata's own settings (``cdp_site.settings``: the same middleware,
database settings and production mode as the product) but a minimal URLconf, so gunicorn can
serve it with exactly the configuration the collection endpoints get:

    gunicorn bench.floor_app:application

``POST /v1/track`` answers ``{"success": true}`` without reading the body or touching the
database; ``/health/`` lets the bench see that the server is up. Benchmark-only: nothing in
the product routes here.
"""

from __future__ import annotations

import os

from django.core.handlers.wsgi import WSGIHandler
from django.http import HttpRequest, JsonResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cdp_site.settings")


@csrf_exempt
def bare(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"success": True})


urlpatterns = [
    path("v1/track", bare),
    path("health/", bare),
]


def _application() -> WSGIHandler:
    from django.conf import settings
    from django.core.wsgi import get_wsgi_application

    settings.ROOT_URLCONF = __name__
    return get_wsgi_application()


application = _application()
