"""Audience export to a webhook against a real local receiver that verifies every delivery
with the ``standardwebhooks`` library: full sync, then changes from the log, consent, PII,
hashing, and every bad answer the endpoint can give."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from typing import Any

import pytest
from django.core import mail
from pytest_httpserver import HTTPServer

from cdp_site.tenancy import actor_for_user
from connectors import authorizations
from connectors.errors import InvalidInput
from connectors.jobs import create_job, resume_job
from connectors.models import Authorization, ConnectorSettings, Job, JobLogEntry
from connectors.runner import run_job
from profiles.models import ConsentPurpose
from profiles.privacy.suppress import suppress_values
from tests.conftest import make_user, system_actor
from tests.connectors.builders import (
    NOW,
    Receiver,
    allow_local,
    enter,
    leave,
    make_audience,
    make_fields,
    make_person,
    set_consent,
)

pytestmark = pytest.mark.django_db


def no_sleep(_seconds: float) -> None:
    return None


@pytest.fixture
def setup(account: Any, httpserver: HTTPServer) -> dict[str, Any]:
    allow_local(account)
    make_fields(account)
    new = authorizations.create_authorization(
        account, system_actor(account), name="Hook", kind="http",
        base_url=httpserver.url_for("/"), secret={"bearer_token": "tok"})
    receiver = Receiver(new.signing_secret or "")
    httpserver.expect_request("/hook", method="POST").respond_with_handler(receiver.handler)
    return {"authorization": new.obj, "receiver": receiver, "audience": make_audience(account)}


def export_job(account: Any, setup: dict[str, Any], **config: Any) -> Job:
    return create_job(account, None, name="Export", kind="audience_webhook",
                      authorization_id=setup["authorization"].pk,
                      config={"audience": "gold", "path": "hook", **config})


def test_full_sync_then_changes_with_consent(account: Any, setup: dict[str, Any]) -> None:
    people = [make_person(account, n, loyalty_tier="Gold") for n in range(5)]
    refuser = make_person(account, 99, consents=())
    enter(setup["audience"], [*people, refuser])
    job = export_job(account, setup, purposes=["advertising"], fields=["loyalty_tier"],
                     batch_size=2)
    run = run_job(job.pk, sleep=no_sleep)
    assert run is not None and run.outcome == "synced"
    receiver: Receiver = setup["receiver"]
    adds = receiver.changes("add")
    assert sorted(c["profile_id"] for c in adds) == sorted(p.pk for p in people)
    number = {p.pk: n for n, p in enumerate(people)}
    assert all(c["identifiers"] == {"email": [f"P{number[c['profile_id']]}@Example.com "]}
               for c in adds)
    assert all(c["fields"] == {"loyalty_tier": "Gold"} for c in adds)
    assert (run.added, run.removed, run.omitted) == (5, 0, 1)
    assert receiver.messages[0]["type"] == "audience.membership"
    assert receiver.messages[0]["audience"]["slug"] == "gold"

    newcomer = make_person(account, 6)
    enter(setup["audience"], [newcomer])
    leave(setup["audience"], people[0])
    set_consent(people[1], "advertising", False)  # withdrew: removed at the destination
    second = run_job(job.pk, sleep=no_sleep)
    assert second is not None and (second.added, second.removed) == (1, 2)
    assert [c["profile_id"] for c in receiver.changes("add")][-1] == newcomer.pk
    assert {c["profile_id"] for c in receiver.changes("remove")} == {people[0].pk,
                                                                      people[1].pk}
    third = run_job(job.pk, sleep=no_sleep)  # nothing new: nothing sent
    assert third is not None and (third.added, third.removed) == (0, 0)
    assert len(receiver.changes("add")) == 6


def test_hashed_emails_and_e164_phones(account: Any, setup: dict[str, Any]) -> None:
    person = make_person(account, 1, phone="(415) 555-0132")
    enter(setup["audience"], [person])
    job = export_job(account, setup, identifiers=["email", "phone"],
                     hash={"email": "email", "phone": "phone"})
    run_job(job.pk, sleep=no_sleep)
    (add,) = setup["receiver"].changes("add")
    assert add["identifiers"] == {
        "email": [hashlib.sha256(b"p1@example.com").hexdigest()],
        "phone": [hashlib.sha256(b"+14155550132").hexdigest()],
    }


def test_pii_needs_a_creator_who_may_see_it(account: Any, setup: dict[str, Any]) -> None:
    marketer = make_user("mara", account, roles=["campaign_manager"])
    with pytest.raises(InvalidInput) as caught:
        create_job(account, actor_for_user(marketer, account, None),
                   name="E", kind="audience_webhook", authorization_id=setup["authorization"].pk,
                   config={"audience": "gold", "identifiers": ["email"]})
    assert caught.value.path == "config.identifiers.0" and caught.value.code == "pii_denied"
    # A member who could see PII when creating it, and lost that since: PII left out.
    dana = make_user("dana", account, roles=["data_manager"])
    job = create_job(account, actor_for_user(dana, account, None), name="E",
                     kind="audience_webhook", authorization_id=setup["authorization"].pk,
                     config={"audience": "gold", "path": "hook", "identifiers": ["email"]})
    dana.memberships.get().roles.set([])
    enter(setup["audience"], [make_person(account, 1)])
    run_job(job.pk, sleep=no_sleep)
    (add,) = setup["receiver"].changes("add")
    assert add["identifiers"] == {}


@pytest.mark.parametrize(("config", "path"), [
    ({}, "config.audience"),
    ({"audience": "nope"}, "config.audience"),
    ({"audience": "gold", "batch_size": 0}, "config.batch_size"),
    ({"audience": "gold", "hash": {"email": "md5"}}, "config.hash.email"),
    ({"audience": "gold", "surprise": 1}, "config"),
])
def test_bad_configuration_is_refused_with_its_path(account: Any, setup: dict[str, Any],
                                                    config: dict[str, Any], path: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        create_job(account, None, name="E", kind="audience_webhook",
                   authorization_id=setup["authorization"].pk, config=config)
    assert caught.value.path == path
    assert not Job.objects.filter(account=account).exists()


def _failing_endpoint(httpserver: HTTPServer, status: int, headers: dict[str, str] | None = None
                      ) -> None:
    httpserver.clear()
    httpserver.expect_request("/hook").respond_with_data("no", status=status,
                                                         headers=headers or {})


def test_server_error_sleeps_with_backoff_and_keeps_the_cursor(
        account: Any, setup: dict[str, Any], httpserver: HTTPServer) -> None:
    enter(setup["audience"], [make_person(account, 1)])
    job = export_job(account, setup)
    _failing_endpoint(httpserver, 500)
    waits: list[float] = []
    run = run_job(job.pk, sleep=waits.append, now=lambda: NOW)
    job.refresh_from_db()
    assert run is not None and run.outcome == "error"
    assert len(waits) == 2  # three attempts in the run
    assert job.state == "sleeping" and job.cursor == {}
    assert job.next_run_at is not None and job.next_run_at >= NOW + timedelta(seconds=24)
    kinds = list(job.log.order_by("id").values_list("kind", flat=True))
    assert kinds == ["started", "error", "sleeping"]
    assert "answered 500" in job.log.get(kind="error").message


def test_429_retry_after_is_honoured(account: Any, setup: dict[str, Any],
                                     httpserver: HTTPServer) -> None:
    enter(setup["audience"], [make_person(account, 1)])
    job = export_job(account, setup)
    _failing_endpoint(httpserver, 429, {"Retry-After": "3"})
    waits: list[float] = []
    run_job(job.pk, sleep=waits.append, now=lambda: NOW)
    assert waits == [3.0, 3.0]
    _failing_endpoint(httpserver, 429, {"Retry-After": "7200"})  # too long to wait in a run
    Job.objects.filter(pk=job.pk).update(next_run_at=NOW)
    run_job(job.pk, sleep=waits.append, now=lambda: NOW)
    job.refresh_from_db()
    assert job.next_run_at == NOW + timedelta(seconds=7200)


def test_400_fails_the_job_until_resumed(account: Any, setup: dict[str, Any],
                                         httpserver: HTTPServer) -> None:
    enter(setup["audience"], [make_person(account, 1)])
    job = export_job(account, setup)
    _failing_endpoint(httpserver, 400)
    run_job(job.pk, sleep=no_sleep)
    job.refresh_from_db()
    assert job.state == "failed" and "answered 400" in job.last_error
    assert run_job(job.pk, sleep=no_sleep) is None  # stays stopped
    resume_job(job, None)
    httpserver.clear()
    httpserver.expect_request("/hook").respond_with_handler(setup["receiver"].handler)
    run = run_job(job.pk, sleep=no_sleep)
    assert run is not None and run.added == 1


def test_errors_for_ten_hours_fail_the_job_and_five_in_a_row_alert(
        account: Any, setup: dict[str, Any], httpserver: HTTPServer) -> None:
    make_user("ada", account, roles=["admin"])
    httpserver.expect_request("/alerts").respond_with_json({})
    ConnectorSettings.objects.filter(account=account).update(
        alert_webhook_url=httpserver.url_for("/alerts"))
    enter(setup["audience"], [make_person(account, 1)])
    job = export_job(account, setup)
    _failing_endpoint(httpserver, 503)
    httpserver.expect_request("/alerts").respond_with_json({})
    for hour in range(5):
        clock = NOW + timedelta(hours=hour)
        run_job(job.pk, sleep=no_sleep, now=lambda at=clock: at)
        clock += timedelta(hours=1)
        Job.objects.filter(pk=job.pk).update(next_run_at=clock)
    job.refresh_from_db()
    assert job.state == "sleeping" and job.consecutive_errors == 5
    assert len(mail.outbox) == 1 and "5 errors in a row" in mail.outbox[0].subject
    assert mail.outbox[0].to == ["ada@example.com"]
    alert_bodies = [r.get_json() for r, _ in httpserver.log if r.path == "/alerts"]
    assert alert_bodies and "5 errors in a row" in alert_bodies[0]["text"]
    run_job(job.pk, sleep=no_sleep, now=lambda: NOW + timedelta(hours=10))
    job.refresh_from_db()
    assert job.state == "failed"
    assert job.log.filter(kind=JobLogEntry.Kind.FAILED).exists()
    assert len(mail.outbox) == 2


def test_deleted_authorization_fails_the_job(account: Any, setup: dict[str, Any]) -> None:
    job = export_job(account, setup)
    Authorization.objects.filter(pk=setup["authorization"].pk).delete()  # e.g. by the admin
    run_job(job.pk, sleep=no_sleep)
    job.refresh_from_db()
    assert job.state == "failed" and "authorization was deleted" in job.last_error


def test_suppressed_people_and_purpose_defaults_decide_what_is_exported(
        account: Any, setup: dict[str, Any]) -> None:
    """The privacy check (profiles.privacy.exports): a suppressed person is never sent, and
    a purpose granted by default sends people who gave no answer."""
    kept, gone = make_person(account, 1), make_person(account, 2)
    silent = make_person(account, 3, consents=())
    suppress_values(account, ["p2@example.com"], subject="test")  # normalised: it matches
    enter(setup["audience"], [kept, gone, silent])
    run = run_job(export_job(account, setup, purposes=["advertising"]).pk, sleep=no_sleep)
    assert run is not None
    assert {c["profile_id"] for c in setup["receiver"].changes("add")} == {kept.pk}

    ConsentPurpose.objects.create(account=account, name="newsletter", granted_by_default=True)
    run = run_job(export_job(account, setup, purposes=["newsletter"], path="hook").pk,
                  sleep=no_sleep)
    assert run is not None
    assert {c["profile_id"] for c in setup["receiver"].changes("add")} == {kept.pk, silent.pk}
