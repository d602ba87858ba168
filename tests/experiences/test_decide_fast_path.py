"""experiences.decisions.middleware: decision requests skip the session, CSRF, auth, account
and message middleware, resolved with their own URLconf, answered as through the full chain."""

from __future__ import annotations

import json

import pytest
from django.test import Client
from django.urls import get_resolver

from cdp_site.models import Account
from experiences.decisions.middleware import DECISION_URLCONF, PREFIXES
from tests.conftest import make_write_key
from tests.experiences.decide_helpers import make_experience

pytestmark = pytest.mark.django_db
PATHS = ["/api/v1/decide", "/ofrep/v1/evaluate/flags", "/ofrep/v1/evaluate/flags/hero"]


@pytest.mark.parametrize("path", PATHS)
def test_the_decision_urlconf_resolves_as_the_site_does(path: str) -> None:
    site = get_resolver().resolve(path)
    own = get_resolver(DECISION_URLCONF).resolve(path)
    assert (own.func, own.args, own.kwargs) == (site.func, site.args, site.kwargs)
    assert getattr(own.func, "csrf_exempt", False)
    assert path.startswith(PREFIXES)


@pytest.mark.parametrize("path", ["/api/v1/decide", "/ofrep/v1/evaluate/flags/hero"])
def test_a_decision_skips_sessions_and_keeps_the_outer_headers(
        client: Client, account: Account, path: str) -> None:
    make_experience(account, "hero")
    secret = make_write_key(account)[1]
    client.cookies["sessionid"] = "not-a-session"
    body = {"uid": "v1", "context": {"targetingKey": "v1"}}
    response = client.post(path, data=json.dumps(body), content_type="application/json",
                           HTTP_ORIGIN="https://shop.example",
                           HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert response.status_code == 200
    assert response["Access-Control-Allow-Origin"] == "*"  # CORS, before the fast path
    assert response["X-Content-Type-Options"] == "nosniff"  # SecurityMiddleware
    assert response["X-Frame-Options"] == "DENY"  # XFrameOptionsMiddleware, kept
    assert "Cookie" not in response.get("Vary", "")
    assert not response.cookies


def test_other_api_paths_still_take_the_full_chain(client: Client, account: Account) -> None:
    response = client.get("/api/v1/decide-not")
    assert response.status_code == 404
