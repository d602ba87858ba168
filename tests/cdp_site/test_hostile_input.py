"""Hostile input on public and management endpoints (#18 finding 3): a NUL character, a time
zone offset out of range, numbers past the database's range: each answers 400 with a code,
never 500, and changes nothing."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from rest_framework.test import APIClient

from cdp_site.models import Account
from cdp_site.text import NUL_MESSAGE
from experiences.models import Experience
from profiles.models import Stream
from tests.conftest import make_token, make_user, make_write_key
from tests.experiences.decide_helpers import make_experience

pytestmark = pytest.mark.django_db
NUL = "v\u0000x"


@pytest.fixture
def key(account: Account) -> str:
    return make_write_key(account)[1]


def public_post(path: str, body: Any, key: str) -> Any:
    client = Client(raise_request_exception=False)
    return client.post(path, json.dumps(body), content_type="application/json",
                       HTTP_AUTHORIZATION=f"Bearer {key}")


def api(account: Account) -> APIClient:
    _token, secret = make_token(account, ["admin"])
    client = APIClient(raise_request_exception=False)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


@pytest.mark.parametrize("path,body", [
    ("/api/v1/decide", {"uid": NUL}),
    ("/api/v1/decide", {"uid": "v", "identifiers": {"email": NUL}}),
    ("/api/v1/decide", {"uid": "v", "identifiers": {NUL: "a"}}),
    ("/api/v1/decide", {"uid": "v", "attributes": {"plan": NUL}}),
    ("/api/v1/decide", {"uid": "v", "experiences": [NUL]}),
    ("/ofrep/v1/evaluate/flags/hero", {"context": {"targetingKey": NUL}}),
    ("/ofrep/v1/evaluate/flags", {"context": {"targetingKey": NUL}}),
    ("/ofrep/v1/evaluate/flags", {"context": {"targetingKey": "v", "plan": [NUL]}}),
])
def test_a_nul_in_a_decision_request_is_refused(account: Account, key: str, path: str,
                                                body: Any) -> None:
    make_experience(account, "hero")
    response = public_post(path, body, key)
    assert response.status_code == 400, response.content
    data = response.json()
    assert data.get("code") == "invalid_text" or data.get("errorCode") == "INVALID_CONTEXT"


@pytest.mark.parametrize("path,code", [
    # a time zone offset out of range, a year past 9999
    ("/api/v1/audit-log/?since=2026-01-01T00:00:00%2B99:00", "invalid"),
    ("/api/v1/audit-log/?until=2026-01-01T00:00:00-24:00", "invalid"),
    ("/api/v1/failed-events/?since=2026-01-01T00:00:00%2B99:00", "invalid"),
    ("/api/v1/failed-events/?until=2026-01-01T00:00:00%2B23:60", "invalid"),
    ("/api/v1/audit-log/?since=99999-01-01T00:00:00", "invalid"),
    # a NUL in a query parameter or the path
    ("/api/v1/profiles/?q=a%00b", "invalid_text"),
    ("/api/v1/profiles/?field=email&q=a%00b", "invalid_text"),
    ("/api/v1/profiles/email/a%00b", "invalid_text"),
    ("/api/v1/audiences/?q=a%00b", "invalid_text"),
    ("/api/v1/audit-log/?action=a%00b", "invalid_text"),
    ("/api/v1/failed-events/?stream=a%00b", "invalid_text"),
    ("/api/v1/schema/fields/?q=a%00b", "invalid_text"),
])
def test_a_bad_query_or_path_is_refused(account: Account, path: str, code: str) -> None:
    response = api(account).get(path)
    assert response.status_code == 400, response.content
    assert response.json()["code"] == code


@pytest.mark.parametrize("path,body", [
    ("/api/v1/tracking-plans/", {"stream": "web", "event": "track", "mode": "drop",
                                 "schema": {"type": "object", "properties": {NUL: {}}}}),
    ("/api/v1/tracking-plans/", {"stream": "web", "event": NUL, "mode": "drop",
                                 "schema": {"type": "object"}}),
    ("/api/v1/audiences/validate/", {"rule": {"field": "email", "op": "=", "value": NUL}}),
    ("/api/v1/audiences/validate/", {"text": 'email = "a\u0000"'}),
    ("/api/v1/audiences/", {"slug": "a", "name": "A",
                            "rule": {"field": NUL, "op": "=", "value": "a"}}),
    ("/api/v1/schema/evaluate/", {"expression": "'a\u0000'"}),
])
def test_a_nul_in_a_management_body_is_refused(account: Account, path: str, body: Any) -> None:
    response = api(account).post(path, body, format="json")
    assert response.status_code == 400, response.content
    assert response.json()["code"] in ("invalid_text", "invalid")


def test_a_nul_in_a_page_query_or_form_is_refused(account: Account) -> None:
    Stream.objects.create(account=account, name="web")
    client = Client(raise_request_exception=False)
    client.force_login(make_user("ann", account))
    assert client.get("/profiles/?q=a%00b").status_code == 400
    refused = client.post("/streams/web/keys/visibility/", {"key": NUL, "hidden": "true"})
    assert refused.status_code == 400
    assert refused.content.decode() == NUL_MESSAGE
    assert client.post("/streams/web/keys/visibility/", {"key": "a", "hidden": "true"},
                       ).status_code == 404  # a plain value passes on to the view


def test_a_nul_in_an_api_form_body_is_refused(account: Account) -> None:
    response = api(account).post("/api/v1/tokens/", {"description": NUL, "roles": "admin"})
    assert response.status_code == 400
    assert response.json()["code"] in ("invalid_text", "invalid")


@pytest.mark.urls("tests.cdp_site.raising_urls")
@pytest.mark.parametrize("accept", ["text/html", "application/json"])
def test_debug_pages_reach_loopback_clients_only(settings: Any, accept: str) -> None:
    settings.DEBUG = True
    client = Client(raise_request_exception=False)
    local = client.get("/fail/", HTTP_ACCEPT=accept, REMOTE_ADDR="127.0.0.1")
    assert local.status_code == 500
    assert b"DATABASES" in local.content or b"DATABASE_URL" in local.content  # the debug page
    remote = client.get("/fail/", HTTP_ACCEPT=accept, REMOTE_ADDR="203.0.113.9")
    assert remote.status_code == 500
    assert b"DATABASE" not in remote.content and b"Traceback" not in remote.content
    assert b"something went wrong on our side" in remote.content.lower()
    settings.STRATA_TRUSTED_PROXY_HOPS = 1  # behind a local proxy: the forwarded client counts
    proxied = client.get("/fail/", HTTP_ACCEPT=accept, REMOTE_ADDR="127.0.0.1",
                         HTTP_X_FORWARDED_FOR="203.0.113.9")
    assert b"DATABASE" not in proxied.content


def test_serve_refuses_to_listen_beyond_loopback_with_debug_on(settings: Any) -> None:
    settings.DEBUG = True
    with pytest.raises(CommandError, match="loopback only"):
        call_command("serve", "--bind", "0.0.0.0:8000")


@pytest.mark.parametrize("field", ["hash_version", "bandit_interval_minutes",
                                   "bandit_burn_in_hours"])
def test_a_number_past_its_columns_range_is_refused(account: Account, field: str) -> None:
    response = api(account).post("/api/v1/experiences/", {
        "key": "hero", "name": "Hero", "distribution": "bandit", field: 2**40}, format="json")
    assert response.status_code == 400, response.content
    assert not Experience.objects.exists()
