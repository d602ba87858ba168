"""Every API path answers with or without its trailing slash, and every error under /api/ is
the JSON {code, message} body, whatever the method and however the client authenticates
(issue #12 item 1, issue #18 finding 9)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.test import Client
from django.urls import resolve
from rest_framework.test import APIClient

from cdp_site.api import errors
from cdp_site.models import Account, WriteKey
from tests.conftest import PASSWORD, make_token, make_user, make_write_key

WRITE_METHODS = ("post", "put", "patch", "delete")
# A value for each path parameter of the schema that its pattern accepts.
PARAMETER_VALUES = {"field": "email", "value": "nobody@example.com"}


def _schema_operations() -> list[tuple[str, str]]:
    response = Client().get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    operations = []
    for template, item in response.json()["paths"].items():
        path = re.sub(
            r"\{(\w+)\}", lambda match: PARAMETER_VALUES.get(match.group(1), "999999"), template
        )
        operations.extend(
            (path, method) for method in item if method in ("get", *WRITE_METHODS)
        )
    return operations


def bearer_client(secret: str) -> APIClient:
    """A script's client: a Bearer token, and Django's CSRF checks on as in production."""
    client = APIClient(enforce_csrf_checks=True)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


def _both_forms(path: str) -> tuple[str, str]:
    bare = path.rstrip("/")
    return bare, bare + "/"


def _assert_json_error(response: Any, status: int | None = None) -> dict[str, Any]:
    if status is not None:
        assert response.status_code == status, response.content[:300]
    assert response["Content-Type"].startswith("application/json"), response.content[:300]
    body = response.json()
    assert isinstance(body["code"], str) and body["code"]
    assert isinstance(body["message"], str) and body["message"]
    return body


def _request(client: Client, method: str, path: str) -> Any:
    if method == "get":
        return client.get(path)
    return getattr(client, method)(path, "{}", content_type="application/json")


@pytest.mark.django_db
def test_every_schema_operation_is_routed_with_and_without_the_trailing_slash():
    operations = _schema_operations()
    assert len(operations) > 80  # the whole API, not an empty schema
    unrouted = [
        (method, form) for path, method in operations for form in _both_forms(path)
        if resolve(form).func is errors.not_found_view
    ]
    assert unrouted == []


@pytest.mark.django_db
def test_every_schema_operation_answers_json_both_ways_with_a_bearer_token(account):
    _token, secret = make_token(account, ["admin"])
    client = bearer_client(secret)
    client.raise_request_exception = False
    not_json = []
    for path, method in _schema_operations():
        for form in _both_forms(path):
            response = _request(client, method, form)
            if response.status_code == 204:
                continue
            if (
                response.status_code >= 500
                or not response["Content-Type"].startswith("application/json")
                or (response.status_code >= 400 and not {"code", "message"} <= set(
                    response.json()))
            ):
                not_json.append((method, form, response.status_code, response.content[:80]))
    assert not_json == []


@pytest.mark.django_db
def test_the_schema_and_its_browser_answer_with_and_without_the_slash():
    for path in ("/api/schema", "/api/schema/", "/api/docs", "/api/docs/"):
        assert Client().get(path).status_code == 200, path
    assert resolve("/api/schema").url_name == "api-schema"


@pytest.mark.django_db
def test_revoking_a_token_without_the_slash_with_a_bearer_token_revokes_it(account):
    _admin, secret = make_token(account, ["admin"])
    victim, _ = make_token(account, ["observer"])
    response = bearer_client(secret).delete(f"/api/v1/tokens/{victim.pk}")
    assert response.status_code == 204
    victim.refresh_from_db()
    assert victim.status == "revoked"
    assert bearer_client(secret).get(f"/api/v1/tokens/{victim.pk}").json()["status"] == "revoked"


@pytest.mark.django_db
def test_revoking_a_write_key_without_the_slash_revokes_it(account):
    _admin, secret = make_token(account, ["admin"])
    key, _ = make_write_key(account)
    assert bearer_client(secret).delete(f"/api/v1/write-keys/{key.pk}").status_code == 204
    assert WriteKey.objects.get(pk=key.pk).is_revoked


@pytest.mark.django_db
@pytest.mark.parametrize("method", ["get", "post", "put", "patch", "delete", "options"])
@pytest.mark.parametrize("path", ["/api/v1/no-such-thing", "/api/v1/no-such-thing/",
                                  "/api/nothing", "/api/v1/tokens/1/nothing"])
def test_unknown_api_path_is_a_json_404_whatever_the_method(account, method, path):
    _token, secret = make_token(account, ["admin"])
    for client in (bearer_client(secret), Client(enforce_csrf_checks=True)):
        body = _assert_json_error(_request(client, method, path), 404)
        assert body["code"] == "not_found"


@pytest.mark.django_db
def test_unsupported_method_is_a_json_405(account):
    _token, secret = make_token(account, ["admin"])
    for path in ("/api/v1/me/", "/api/v1/me", "/api/v1/roles"):
        body = _assert_json_error(bearer_client(secret).put(path, {}, format="json"), 405)
        assert body["code"] == "method_not_allowed"


@pytest.mark.django_db
def test_session_write_without_the_csrf_token_is_a_json_403(account):
    user = make_user("ada", account)
    client = APIClient(enforce_csrf_checks=True)
    assert client.login(username="ada", password=PASSWORD)
    for path in ("/api/v1/write-keys/", "/api/v1/write-keys"):
        body = _assert_json_error(client.post(path, {"name": "Site"}, format="json"), 403)
        assert "CSRF" in body["message"]
    assert not WriteKey.objects.for_account(account).exists()
    assert user.pk


@pytest.mark.django_db
def test_a_csrf_failure_on_a_plain_api_view_is_json(account, settings):
    """Django's own CSRF check (views that are not DRF's) answers JSON under /api/."""
    settings.ROOT_URLCONF = "tests.cdp_site.api_paths_urls"
    make_user("ada", account)
    client = Client(enforce_csrf_checks=True)
    assert client.login(username="ada", password=PASSWORD)
    body = _assert_json_error(client.post("/api/v1/test-plain-form", {}), 403)
    assert body["code"] == "csrf_failed"
    page = client.post("/test-plain-form", {})
    assert page.status_code == 403 and page["Content-Type"].startswith("text/html")


@pytest.mark.django_db
def test_a_crash_under_the_api_is_a_json_500(admin_client, settings):
    settings.ROOT_URLCONF = "tests.cdp_site.api_paths_urls"
    admin_client.raise_request_exception = False
    for method in ("get", "delete"):
        body = _assert_json_error(_request(admin_client, method, "/api/v1/test-crash"), 500)
        assert body["code"] == "server_error"
        assert "Traceback" not in body["message"]


@pytest.mark.django_db
def test_a_profile_identifier_with_a_line_break_is_reachable(account):
    _token, secret = make_token(account, ["admin"])
    admin_client = bearer_client(secret)
    for method in ("get", "delete"):
        response = _request(admin_client, method, "/api/v1/profiles/email/a%0Ab")
        body = _assert_json_error(response)
        assert response.status_code < 500
        assert body["message"] != "Not found.", body  # the profile API answered, not the catch-all
    assert resolve("/api/v1/profiles/email/a\nb").url_name == "profile-by-identifier"


@pytest.mark.django_db
def test_decide_answers_with_and_without_the_slash(account):
    _key, secret = make_write_key(account)
    for path in ("/api/v1/decide", "/api/v1/decide/"):
        response = Client().post(path, {"uid": "v-1"}, content_type="application/json",
                                 HTTP_AUTHORIZATION=f"Bearer {secret}")
        assert response.status_code == 200, response.content
        assert response.json()["uid"] == "v-1"
    assert Account.objects.count() == 1
