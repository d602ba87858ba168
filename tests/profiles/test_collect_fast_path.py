"""profiles.collection.middleware: collection requests skip the session, CSRF, auth, account and
message middleware, and are answered exactly as through the full chain."""

from __future__ import annotations

import json

import pytest
from django.http import HttpRequest, HttpResponse
from django.test import Client, override_settings
from django.urls import get_resolver

from cdp_site.models import Account
from profiles.collection.middleware import COLLECTION_URLCONF, CollectionMiddleware
from tests.profiles.conftest import basic_auth, stored

pytestmark = pytest.mark.django_db

PATHS = ["/v1/track", "/v1/t/", "/v1/batch", "/v1/import", "/v1/m", "/beacon/v1/batch",
         "/sourceConfig/", "/sourceConfig", "/c/acme", "/c/acme/web/", "/cid/acme",
         "/collect/json", "/collect/json/web"]


@pytest.mark.parametrize("path", PATHS)
def test_the_collection_urlconf_resolves_as_the_site_does(path: str) -> None:
    site = get_resolver().resolve(path)
    own = get_resolver(COLLECTION_URLCONF).resolve(path)
    assert (own.func, own.args, own.kwargs) == (site.func, site.args, site.kwargs)
    assert getattr(own.func, "csrf_exempt", False)


def test_a_collection_answer_keeps_the_outer_and_kept_middleware_headers(
        client: Client, account: Account, write_key: str) -> None:
    response = client.post("/v1/track", data=json.dumps({"userId": "u-1", "event": "E"}),
                           content_type="application/json", HTTP_ORIGIN="https://shop.example",
                           HTTP_AUTHORIZATION=basic_auth(write_key))
    assert response.status_code == 200
    assert response.json() == {"success": True}
    assert response["Access-Control-Allow-Origin"] == "*"  # CORS, before the fast path
    assert response["X-Content-Type-Options"] == "nosniff"  # SecurityMiddleware, before it
    assert response["X-Frame-Options"] == "DENY"  # XFrameOptionsMiddleware, kept after it
    assert response["Content-Length"] == str(len(response.content))  # CommonMiddleware
    assert "Vary" not in response or "Cookie" not in response["Vary"]
    assert not response.cookies
    assert len(stored(account)) == 1


def test_a_disallowed_host_is_still_refused(client: Client) -> None:
    response = client.post("/v1/track", data="{}", content_type="application/json",
                           HTTP_HOST="evil.example")
    assert response.status_code == 400


def test_other_paths_take_the_full_chain() -> None:
    seen: list[HttpRequest] = []

    def downstream(request: HttpRequest) -> HttpResponse:
        seen.append(request)
        return HttpResponse("full chain")

    middleware = CollectionMiddleware(downstream)
    request = HttpRequest()
    request.path_info = request.path = "/streams/"
    request.method = "GET"
    assert middleware(request).content == b"full chain"
    request.path_info = request.path = "/v1/unknown-kind"
    assert middleware(request).content == b"full chain"
    assert len(seen) == 2


@override_settings(ROOT_URLCONF="tests.profiles.test_collect_fast_path")
def test_it_steps_aside_under_another_urlconf() -> None:
    from django.core.exceptions import MiddlewareNotUsed

    with pytest.raises(MiddlewareNotUsed):
        CollectionMiddleware(lambda request: HttpResponse())


urlpatterns: list[object] = []
