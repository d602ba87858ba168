"""Settings, error shapes, pagination, health, the API schema and the immutable account id."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.db import DatabaseError, transaction
from django.test import RequestFactory
from django.utils import timezone
from rest_framework.request import Request
from rest_framework.test import APIClient, APIRequestFactory

from cdp_site import tasks
from cdp_site.api.pagination import OrderedLimitOffsetPagination, QuerySetNotOrdered
from cdp_site.models import Account, WorkerHeartbeat
from cdp_site.views import server_error
from tests.conftest import make_account, make_token, token_client

BASE_DIR = Path(__file__).resolve().parents[2]
PRODUCTION_ENV = {
    "DEBUG": "0",
    "SECRET_KEY": "plumbing-test-" + "k3y-" * 12 + "z9",
    "ALLOWED_HOSTS": "strata.example.com",
    "STRATA_TOKEN_PEPPER": "plumbing-test-pepper",
    # `check` does not connect; a URL keeps settings from starting the embedded server.
    "DATABASE_URL": "postgres://strata@127.0.0.1:1/unused",
}


def _manage(*args: str, **env: str | None) -> subprocess.CompletedProcess[str]:
    environment = {
        key: value for key, value in os.environ.items()
        if key not in PRODUCTION_ENV and not key.startswith(("DJANGO_", "STRATA_"))
    }
    environment |= PRODUCTION_ENV
    for key, value in env.items():
        if value is None:
            environment.pop(key, None)
        else:
            environment[key] = value
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=BASE_DIR, env=environment,
        capture_output=True, text=True, timeout=120, check=False,
    )


# --- production settings ------------------------------------------------------------------

REQUIRED_IN_PRODUCTION = ["SECRET_KEY", "ALLOWED_HOSTS", "STRATA_TOKEN_PEPPER"]


@pytest.mark.slow
@pytest.mark.parametrize("name", REQUIRED_IN_PRODUCTION)
def test_production_refuses_to_start_without_a_required_setting_and_names_it(name):
    result = _manage("check", **{name: None})
    assert result.returncode != 0
    assert name in result.stderr
    for present in set(REQUIRED_IN_PRODUCTION) - {name}:
        assert f": {present}" not in result.stderr and f", {present}" not in result.stderr


@pytest.mark.slow
@pytest.mark.parametrize("name", REQUIRED_IN_PRODUCTION)
def test_production_treats_a_blank_setting_as_missing(name):
    result = _manage("check", **{name: "  "})
    assert result.returncode != 0
    assert name in result.stderr


@pytest.mark.slow
def test_production_refuses_allowed_hosts_that_name_no_host():
    result = _manage("check", ALLOWED_HOSTS=" , ")
    assert result.returncode != 0
    assert "ALLOWED_HOSTS" in result.stderr


@pytest.mark.slow
def test_production_names_every_missing_setting_at_once():
    result = _manage("check", SECRET_KEY=None, STRATA_TOKEN_PEPPER=None)
    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr and "STRATA_TOKEN_PEPPER" in result.stderr


@pytest.mark.slow
def test_production_settings_pass_check_deploy():
    result = _manage("check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


@pytest.mark.slow
def test_trusted_proxy_hops_come_from_the_environment():
    show = ("shell", "--no-imports", "-c",
            "from django.conf import settings; print(settings.STRATA_TRUSTED_PROXY_HOPS)")
    assert _manage(*show).stdout.strip() == "0"
    assert _manage(*show, STRATA_TRUSTED_PROXY_HOPS="2").stdout.strip() == "2"


# --- pagination ---------------------------------------------------------------------------


def _request(query: str = "") -> Request:
    return Request(APIRequestFactory().get(f"/api/v1/things/{query}"))


@pytest.mark.django_db
def test_pagination_refuses_an_unordered_queryset():
    with pytest.raises(QuerySetNotOrdered, match="Account"):
        OrderedLimitOffsetPagination().paginate_queryset(Account.objects.order_by(), _request())


@pytest.mark.django_db
def test_pagination_pages_an_ordered_queryset():
    for name in ("A", "B", "C"):
        make_account(name)
    page = OrderedLimitOffsetPagination().paginate_queryset(
        Account.objects.order_by("name"), _request("?limit=2&offset=1")
    )
    assert [account.name for account in page] == ["B", "C"]


@pytest.mark.django_db
def test_pagination_caps_the_page_size(admin_client):
    body = admin_client.get("/api/v1/audit-log/", {"limit": 100_000}).json()
    assert body["count"] == 1
    assert OrderedLimitOffsetPagination.max_limit == 1000


# --- one error shape everywhere -----------------------------------------------------------


def _assert_error(response: Any, status: int, code: str, *, errors: bool = False) -> None:
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert body["code"] == code
    assert isinstance(body["message"], str) and body["message"]
    assert set(body) == ({"code", "message", "errors"} if errors else {"code", "message"})


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/api/v1/nope/", "/api/nope", "/api/v1/tokens/x/y/z/"])
def test_unknown_api_path_is_a_json_not_found(path):
    response = APIClient().get(path)
    _assert_error(response, 404, "not_found")
    assert response.json() == {"code": "not_found", "message": "Not found."}


@pytest.mark.django_db
def test_error_bodies_have_the_same_shape(account, admin_client):
    observer = token_client(make_token(account, ["observer"])[1])
    _assert_error(APIClient().get("/api/v1/me/"), 401, "not_authenticated")
    _assert_error(token_client("stk_nope").get("/api/v1/me/"), 401, "invalid_token")
    _assert_error(observer.get("/api/v1/tokens/"), 403, "permission_denied")
    _assert_error(admin_client.get("/api/v1/tokens/999999/"), 404, "not_found")
    _assert_error(admin_client.put("/api/v1/account/", {}), 405, "method_not_allowed")
    _assert_error(admin_client.post("/api/v1/me/", {}), 405, "method_not_allowed")
    _assert_error(
        admin_client.post("/api/v1/tokens/", {"roles": "admin", "expires_in_days": 3},
                          format="json"),
        400, "invalid", errors=True,
    )
    _assert_error(
        admin_client.post("/api/v1/tokens/", "{not json", content_type="application/json"),
        400, "parse_error",
    )
    _assert_error(
        admin_client.post("/api/v1/tokens/", "roles=admin", content_type="text/plain"),
        415, "unsupported_media_type",
    )
    _assert_error(
        admin_client.post(
            "/api/v1/tokens/",
            {"description": "ci", "roles": ["admin"], "allowed_networks": ["x"]},
            format="json",
        ),
        400, "invalid_network",
    )
    _assert_error(
        admin_client.get("/api/v1/tokens/", {"limit": "many", "status": "bogus"}),
        400, "invalid", errors=True,
    )


@pytest.mark.django_db
def test_validation_errors_name_the_fields(admin_client):
    body = admin_client.post("/api/v1/write-keys/", {"stream": "not a slug!"},
                             format="json").json()
    assert set(body["errors"]) == {"name", "stream"}
    assert body["message"].split(":")[0] in {"name", "stream"}


@pytest.mark.django_db
@pytest.mark.parametrize("method", ["head", "options"])
def test_head_and_options_answer_without_error(admin_client, method):
    for path in ("/api/v1/me/", "/api/v1/tokens/", "/api/v1/account/"):
        assert getattr(admin_client, method)(path).status_code == 200, path


@pytest.mark.django_db
def test_options_lists_only_the_writes_the_roles_allow(account, admin_client):
    observer = token_client(make_token(account, ["observer"])[1])
    assert "actions" in admin_client.options("/api/v1/tokens/").json()
    assert "actions" not in observer.options("/api/v1/tokens/").json()


def test_server_error_on_an_api_path_is_json():
    response = server_error(RequestFactory().get("/api/v1/tokens/"))
    assert response.status_code == 500
    assert response["Content-Type"].startswith("application/json")
    assert set(json.loads(response.content)) == {"code", "message"}


# --- /health/ -----------------------------------------------------------------------------


@pytest.mark.django_db
def test_health_reports_the_database_and_an_unknown_worker_before_any_heartbeat():
    body = APIClient().get("/health/").json()
    assert body["database"] == {"status": "ok"}
    assert body["worker"]["status"] == "unknown"
    assert body["status"] == "degraded"


@pytest.mark.django_db
def test_health_reports_the_worker_ok_after_a_heartbeat():
    tasks.heartbeat()
    response = APIClient().get("/health/")
    assert response.status_code == 200
    assert response["Cache-Control"].startswith("max-age=0")
    body = response.json()
    assert body["status"] == "ok"
    assert body["worker"]["status"] == "ok"
    assert body["worker"]["age_seconds"] < 5


@pytest.mark.django_db
def test_health_reports_a_stale_worker_when_the_heartbeat_is_old():
    tasks.heartbeat()
    old = timezone.now() - timedelta(seconds=settings.STRATA_WORKER_STALE_AFTER + 5)
    WorkerHeartbeat.objects.update(beat_at=old)

    body = APIClient().get("/health/").json()

    assert body["worker"]["status"] == "stale"
    assert body["status"] == "degraded"

    tasks.heartbeat()
    assert APIClient().get("/health/").json()["worker"]["status"] == "ok"


# --- schema and docs ----------------------------------------------------------------------


@pytest.mark.django_db
def test_openapi_schema_describes_the_api():
    response = APIClient().get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    schema = response.json()
    assert schema["info"]["title"] == "Strata API"
    for path in ("/api/v1/tokens/", "/api/v1/tokens/{id}/", "/api/v1/memberships/",
                 "/api/v1/write-keys/", "/api/v1/audit-log/", "/api/v1/account/",
                 "/api/v1/dashboard/", "/api/v1/me/"):
        assert any(key.rstrip("/") == path.rstrip("/") for key in schema["paths"]), path
    schemes = schema["components"]["securitySchemes"]
    assert schemes["AccessToken"] == {"type": "http", "scheme": "bearer", "bearerFormat": "stk_…"}


@pytest.mark.django_db
def test_api_docs_page_answers():
    response = APIClient().get("/api/docs/")
    assert response.status_code == 200
    assert b"swagger" in response.content.lower()


# --- the account id never changes ---------------------------------------------------------


@pytest.mark.django_db
def test_an_accounts_aid_cannot_be_changed_in_the_database():
    account = make_account("Acme")
    with pytest.raises(DatabaseError, match="aid never changes"), transaction.atomic():
        Account.objects.filter(pk=account.pk).update(aid="changed")
    account.refresh_from_db()
    assert account.aid != "changed"


@pytest.mark.django_db
def test_saving_an_account_with_another_aid_is_refused():
    account = make_account("Acme")
    original = account.aid
    account.aid = "changed"
    with pytest.raises(DatabaseError), transaction.atomic():
        account.save()
    assert Account.objects.get(pk=account.pk).aid == original


@pytest.mark.django_db
def test_other_account_columns_still_change():
    account = make_account("Acme")
    Account.objects.filter(pk=account.pk).update(name="Acme Corp", enabled=False)
    account.refresh_from_db()
    assert (account.name, account.enabled) == ("Acme Corp", False)
    account.name = "Acme Inc"
    account.save()  # writes aid too, unchanged: allowed
    assert Account.objects.get(pk=account.pk).name == "Acme Inc"


@pytest.mark.django_db
def test_new_accounts_get_distinct_url_safe_aids():
    aids = {make_account(f"Account {n}").aid for n in range(20)}
    assert len(aids) == 20
    assert all(aid.isalnum() and len(aid) == 12 for aid in aids)


@pytest.mark.slow
def test_importing_the_settings_starts_no_database_server(tmp_path):
    """Tools that import the settings (mypy's Django plugin, import-linter, a shell) must not
    spawn a database: only manage.py, the WSGI entry point and the test plugin start the
    embedded server. Without one running, the settings name its socket directory."""
    environment = {key: value for key, value in os.environ.items()
                   if key not in ("DATABASE_URL", "XDG_RUNTIME_DIR")}
    environment |= {"STRATA_VAR_DIR": str(tmp_path / "var"),
                    "DJANGO_SETTINGS_MODULE": "cdp_site.settings"}
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup(); from django.conf import settings;"
         "print(settings.DATABASES['default']['OPTIONS']['host'])"],
        cwd=BASE_DIR, env=environment, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(tmp_path / "var" / "pgdata")
    assert not (tmp_path / "var" / "pgdata").exists()
    assert not (tmp_path / "var" / "run").exists()
