"""The connector pages through the Django test client: who may open them, the wizard's
refusals and test connection, pause / resume / run now, and secrets never on a page."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import Client
from pytest_httpserver import HTTPServer

from connectors import authorizations
from connectors.jobs import create_job
from connectors.models import Authorization, Job
from connectors.runner import run_job
from tests.conftest import PASSWORD, make_user, system_actor
from tests.connectors.builders import Receiver, allow_local, enter, make_audience, make_person

pytestmark = pytest.mark.django_db


def signed_in(account: Any, roles: list[str], name: str = "carla") -> Client:
    user = make_user(name, account, roles=roles)
    client = Client()
    assert client.login(username=user.username, password=PASSWORD)
    return client


def test_pages_follow_the_role_matrix(account: Any) -> None:
    observer = signed_in(account, ["observer"], "olga")
    assert observer.get("/connectors/jobs/").status_code == 403
    manager = signed_in(account, ["campaign_manager"])
    page = manager.get("/connectors/jobs/")
    assert page.status_code == 200 and b"No jobs yet" in page.content
    assert b'href="/connectors/jobs/"' in page.content  # the navigation names it


def test_authorization_secret_is_shown_once_and_never_listed(account: Any) -> None:
    client = signed_in(account, ["admin"])
    created = client.post("/connectors/authorizations/", {
        "name": "CRM", "kind": "http", "base_url": "https://crm.example.com/",
        "bearer_token": "tok-very-secret"})
    assert created.status_code == 200
    text = created.content.decode()
    secret = authorizations.secret_of(account_auth(account))["signing_secret"]
    assert secret in text and "tok-very-secret" not in text
    listed = client.get("/connectors/authorizations/").content.decode()
    assert secret not in listed and "tok-very-secret" not in listed and "CRM" in listed


def account_auth(account: Any) -> Authorization:
    return Authorization.objects.get(account=account)


def test_wizard_tests_the_connection_and_refuses_bad_configuration(
        account: Any, httpserver: HTTPServer) -> None:
    allow_local(account)
    make_audience(account)
    new = authorizations.create_authorization(account, system_actor(account), name="Hook",
                                              kind="http", base_url=httpserver.url_for("/"))
    receiver = Receiver(new.signing_secret or "")
    httpserver.expect_request("/hook").respond_with_handler(receiver.handler)
    client = signed_in(account, ["admin"])
    form = {"kind": "audience_webhook", "authorization": str(new.obj.pk), "name": "Export",
            "config": json.dumps({"audience": "gold", "path": "hook"}),
            "schedule": "interval", "interval_seconds": "300"}
    tested = client.post("/connectors/jobs/new/", {**form, "test": "1"}).content.decode()
    assert "Connection works" in tested and len(receiver.messages) == 1
    bad = client.post("/connectors/jobs/new/", {**form, "config": "{}", "create": "1"})
    assert "config.audience" in bad.content.decode()
    not_json = client.post("/connectors/jobs/new/", {**form, "config": "{", "create": "1"})
    assert "not JSON" in not_json.content.decode()
    assert not Job.objects.filter(account=account).exists()
    created = client.post("/connectors/jobs/new/", {**form, "create": "1"})
    job = Job.objects.get(account=account)
    assert created.status_code == 302 and created["Location"] == f"/connectors/jobs/{job.pk}/"


def test_job_page_shows_runs_log_and_actions(account: Any, httpserver: HTTPServer) -> None:
    allow_local(account)
    new = authorizations.create_authorization(account, system_actor(account), name="Hook",
                                              kind="http", base_url=httpserver.url_for("/"))
    httpserver.expect_request("/hook").respond_with_handler(
        Receiver(new.signing_secret or "").handler)
    enter(make_audience(account), [make_person(account, n) for n in range(2)])
    job = create_job(account, None, name="Export", kind="audience_webhook",
                     authorization_id=new.obj.pk, config={"audience": "gold", "path": "hook"})
    run_job(job.pk, sleep=lambda _s: None)
    client = signed_in(account, ["data_manager"])
    page = client.get(f"/connectors/jobs/{job.pk}/").content.decode()
    assert "runs-data" in page and "synced" in page and 'data-testid="action-pause"' in page
    assert client.post(f"/connectors/jobs/{job.pk}/pause/").status_code == 302
    job.refresh_from_db()
    assert job.state == "paused"
    page = client.get(f"/connectors/jobs/{job.pk}/").content.decode()
    assert 'data-testid="action-resume"' in page
    client.post(f"/connectors/jobs/{job.pk}/resume/")
    job.refresh_from_db()
    assert job.state == "sleeping"
    listing = client.get("/connectors/jobs/").content.decode()
    assert "Export" in listing and "Hook" in listing


def test_another_accounts_job_is_not_found(account: Any, other_account: Any) -> None:
    make_audience(other_account)
    auth = authorizations.create_authorization(other_account, None, name="H", kind="http",
                                               base_url="https://x.example.com/").obj
    job = create_job(other_account, None, name="Theirs", kind="audience_webhook",
                     authorization_id=auth.pk, config={"audience": "gold"})
    client = signed_in(account, ["admin"])
    assert client.get(f"/connectors/jobs/{job.pk}/").status_code == 404
    assert client.post(f"/connectors/jobs/{job.pk}/pause/").status_code == 404
    job.refresh_from_db()
    assert job.state == "sleeping"
