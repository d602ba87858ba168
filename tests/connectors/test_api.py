"""The connectors API: secrets shown once and never read back, refusals with the field path,
roles from ROLES.md, account scoping, pause / resume / run now, test connection against a real
local server, and the paths in the OpenAPI schema."""

from __future__ import annotations

from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from rest_framework.test import APIClient

from audiences.editing import delete_audience
from connectors.models import Authorization, Job
from connectors.runner import run_job
from tests.connectors.builders import (
    Receiver,
    allow_local,
    enter,
    make_audience,
    make_fields,
    make_person,
)

pytestmark = pytest.mark.django_db
SECRET = "crm-token-do-not-leak"


def _authorization(client: APIClient, url: str = "https://crm.example.com/") -> dict[str, Any]:
    response = client.post("/api/v1/authorizations/", {
        "name": "CRM", "kind": "http", "base_url": url,
        "secret": {"bearer_token": SECRET}}, format="json")
    assert response.status_code == 201, response.json()
    body: dict[str, Any] = response.json()
    return body


def test_secret_is_shown_once_and_never_read_back(admin_client: APIClient) -> None:
    created = _authorization(admin_client)
    assert created["signing_secret"].startswith("whsec_")
    assert SECRET not in str(created)
    listed = admin_client.get("/api/v1/authorizations/").json()
    one = admin_client.get(f"/api/v1/authorizations/{created['id']}/").json()
    for body in (listed, one):
        assert SECRET not in str(body) and created["signing_secret"] not in str(body)
    assert one["secret_parts"] == ["bearer_token", "signing_secret"]


def test_bad_authorization_is_refused_with_its_field(admin_client: APIClient,
                                                     account: Any) -> None:
    response = admin_client.post("/api/v1/authorizations/", {
        "name": "X", "kind": "http", "secret": {"pasword": "typo"}}, format="json")
    assert response.status_code == 400
    assert response.json()["field"] == "secret.pasword"
    assert not Authorization.objects.filter(account=account).exists()


def test_job_lifecycle_through_the_api(admin_client: APIClient, account: Any) -> None:
    make_audience(account)
    auth = _authorization(admin_client)
    missing = admin_client.post("/api/v1/jobs/", {
        "name": "Export", "kind": "audience_webhook", "authorization": auth["id"],
        "config": {}}, format="json")
    assert missing.status_code == 400
    assert missing.json() | {"message": ""} == {"code": "config_required",
                                                "field": "config.audience", "message": ""}
    created = admin_client.post("/api/v1/jobs/", {
        "name": "Export", "kind": "audience_webhook", "authorization": auth["id"],
        "config": {"audience": "gold"}, "schedule": "cron", "cron": "*/5 * * * *"},
        format="json")
    assert created.status_code == 201, created.json()
    job_id = created.json()["id"]
    assert admin_client.post(f"/api/v1/jobs/{job_id}/pause/").json()["state"] == "paused"
    refused = admin_client.post(f"/api/v1/jobs/{job_id}/run/")
    assert refused.status_code == 400 and refused.json()["code"] == "job_not_runnable"
    assert admin_client.post(f"/api/v1/jobs/{job_id}/resume/").json()["state"] == "sleeping"
    assert admin_client.post(f"/api/v1/jobs/{job_id}/run/").status_code == 202
    kinds = [e["kind"] for e in admin_client.get(f"/api/v1/jobs/{job_id}/log/").json()]
    assert kinds == ["resumed", "paused"]
    bad_cron = admin_client.patch(f"/api/v1/jobs/{job_id}/", {"cron": "every day"},
                                  format="json")
    assert bad_cron.status_code == 400 and bad_cron.json()["field"] == "cron"
    in_use = admin_client.delete(f"/api/v1/authorizations/{auth['id']}/")
    assert in_use.status_code == 409 and in_use.json()["code"] == "authorization_in_use"
    assert admin_client.delete(f"/api/v1/jobs/{job_id}/").status_code == 204
    assert admin_client.delete(f"/api/v1/authorizations/{auth['id']}/").status_code == 204


def test_runs_and_log_show_the_metrics(admin_client: APIClient, account: Any,
                                       httpserver: HTTPServer) -> None:
    allow_local(account)
    make_fields(account)
    auth = _authorization(admin_client, httpserver.url_for("/"))
    receiver = Receiver(auth["signing_secret"])
    httpserver.expect_request("/hook").respond_with_handler(receiver.handler)
    enter(make_audience(account), [make_person(account, n) for n in range(3)])
    job = admin_client.post("/api/v1/jobs/", {
        "name": "Export", "kind": "audience_webhook", "authorization": auth["id"],
        "config": {"audience": "gold", "path": "hook"}}, format="json").json()
    run_job(job["id"], sleep=lambda _s: None)
    (run,) = admin_client.get(f"/api/v1/jobs/{job['id']}/runs/").json()
    assert (run["added"], run["removed"], run["outcome"]) == (3, 0, "synced")
    log = admin_client.get(f"/api/v1/jobs/{job['id']}/log/").json()
    assert [e["kind"] for e in log][:2] == ["sleeping", "synced"]
    assert log[1]["counts"]["added"] == 3


def test_test_connection_makes_one_real_signed_call(admin_client: APIClient, account: Any,
                                                    httpserver: HTTPServer) -> None:
    make_audience(account)
    auth = _authorization(admin_client, httpserver.url_for("/"))
    receiver = Receiver(auth["signing_secret"])
    httpserver.expect_request("/hook").respond_with_handler(receiver.handler)
    body = {"kind": "audience_webhook", "authorization": auth["id"],
            "config": {"audience": "gold", "path": "hook"}}
    refused = admin_client.post("/api/v1/jobs/test-connection/", body, format="json").json()
    assert refused["ok"] is False and refused["code"] == "address_not_allowed"
    allow_local(account)
    answer = admin_client.post("/api/v1/jobs/test-connection/", body, format="json").json()
    assert answer["ok"] is True and "answered 200" in answer["message"]
    assert receiver.messages == [{"type": "ping", "job": "test"}]
    assert not Job.objects.filter(account=account).exists()


@pytest.mark.parametrize(("roles", "read", "write"), [
    (["admin"], 200, 201), (["campaign_manager"], 200, 201), (["data_manager"], 200, 201),
    (["observer"], 403, 403), (["marketer"], 403, 403), (["user_search"], 403, 403),
])
def test_roles_follow_the_matrix(client_for_roles: Any, roles: list[str], read: int,
                                 write: int) -> None:
    client = client_for_roles(*roles)
    assert client.get("/api/v1/jobs/").status_code == read
    assert client.get("/api/v1/authorizations/").status_code == read
    response = client.post("/api/v1/authorizations/", {"name": "A", "kind": "http"},
                           format="json")
    assert response.status_code == write


def test_another_accounts_objects_are_not_found(admin_client: APIClient,
                                                client_for_roles: Any,
                                                other_account: Any) -> None:
    created = _authorization(admin_client)
    other = client_for_roles("admin", target=other_account)
    assert other.get(f"/api/v1/authorizations/{created['id']}/").status_code == 404
    assert other.delete(f"/api/v1/authorizations/{created['id']}/").status_code == 404


def test_connector_paths_are_in_the_openapi_schema(admin_client: APIClient) -> None:
    schema = admin_client.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    for path in ("/api/v1/authorizations/", "/api/v1/jobs/", "/api/v1/jobs/{id}/pause/",
                 "/api/v1/jobs/{id}/runs/", "/api/v1/jobs/test-connection/",
                 "/api/v1/connector-kinds/", "/api/v1/connector-settings/"):
        assert path in schema["paths"], path
    kinds = admin_client.get("/api/v1/connector-kinds/").json()
    assert "audience_webhook" in [k["key"] for k in kinds]


def test_an_audience_an_export_reads_cannot_be_deleted(admin_client: APIClient,
                                                       account: Any) -> None:
    audience = make_audience(account)
    auth = _authorization(admin_client)
    admin_client.post("/api/v1/jobs/", {"name": "Export", "kind": "audience_webhook",
                                        "authorization": auth["id"],
                                        "config": {"audience": "gold"}}, format="json")
    with pytest.raises(Exception, match="job Export"):
        delete_audience(audience, None)
