"""Data subject requests (issue #14): made through the API, run in the background (django-q2,
synchronously here), polled; delete, suppress, unsuppress and their bad input, and the raw-key
samples a delete purges (issue #18, finding 4)."""

from __future__ import annotations

import json
import threading

import pytest
from django.db import connection
from django.test import Client
from django_q.models import Task

from cdp_site.models import AuditEvent
from experiences import config
from experiences.models import Assignment, Conversion, Impression
from profiles.models import (
    FailedEvent,
    PendingEvent,
    PrivacyRequest,
    Profile,
    RawEvent,
    RawKey,
    SuppressedCount,
    Suppression,
)
from profiles.privacy import requests as service
from profiles.processing.rebuild import start_rebuild
from tests.conftest import make_account, system_actor
from tests.experiences.test_tracking import booked, viewed
from tests.experiences.tracking_fixtures import ab_test, assigned
from tests.profiles.conftest import basic_auth
from tests.profiles.people import COOKIE, EMAIL, PHONE, Journey, known_person
from tests.profiles.privacy_helpers import api, make_request, q_sync, tables_holding
from tests.profiles.processing import run, send
from tests.profiles.raw_events import run_aggregator

pytestmark = pytest.mark.django_db

MARKER = "Zanzibar-77c1"


@pytest.fixture(autouse=True)
def _sync(monkeypatch):
    q_sync(monkeypatch)


@pytest.fixture
def capture(django_capture_on_commit_callbacks):
    return django_capture_on_commit_callbacks


def identify(journey: Journey, **traits) -> None:
    reply = journey.client.post(
        "/v1/identify", data={"anonymousId": journey.cookie,
                              "traits": {"email": journey.email, **traits}},
        content_type="application/json", HTTP_AUTHORIZATION=basic_auth(journey.secret))
    assert reply.status_code == 200, reply.content


def test_delete_request_removes_the_person_everywhere_and_keeps_no_value(account, capture):
    journey = known_person(account)
    identify(journey, favourite=MARKER)  # processed: raw event, profile event, raw-key sample
    run(account)
    run_aggregator()
    assert MARKER in RawKey.objects.get(account=account, key="traits.favourite").samples
    identify(journey, note="still waiting")  # stored, not yet processed
    assert PendingEvent.objects.filter(account=account).exists()
    FailedEvent.objects.create(account=account, stream="default", source="test", code="x",
                               reason="r", body=f'[{{"email": "{EMAIL.upper()}"}}, '
                                                f'{{"email": "bob@example.com"}}]')
    other = Journey(account, cookie="visitor-2", email="bob@example.com")
    other.identify()
    client = api(account, "data_manager")

    done = make_request(client, capture, kind="delete", value=f"  {EMAIL.upper()} ",
                        field="email")
    assert done["state"] == "done", done
    assert done["value_hint"] == "m***@example.com"
    result = done["result"]
    assert result["found"] is True and result["profiles"] == 1
    assert result["raw_events"] >= 5 and result["raw_key_samples"] >= 1
    assert result["suppressed"] == 2  # the email and the cookie
    assert not Profile.objects.filter(account=account, identifiers__value=EMAIL).exists()
    assert not RawEvent.objects.filter(account=account, message__icontains=EMAIL).exists()
    assert not PendingEvent.objects.filter(account=account).exclude(
        raw_event_id__in=RawEvent.objects.values("id")).exists()
    key = RawKey.objects.get(account=account, key="traits.favourite")
    assert MARKER not in key.samples
    assert "bob@example.com" in FailedEvent.objects.get(account=account).body
    assert tables_holding(EMAIL, COOKIE, MARKER, PHONE) == []
    # Bob is untouched
    assert Profile.objects.filter(account=account, identifiers__value="bob@example.com").exists()
    # what the records keep: no value, in the request, the audit log or the task table
    row = PrivacyRequest.objects.get(pk=done["id"])
    assert row.value == "" and row.finished_at is not None
    [entry] = AuditEvent.objects.filter(action="privacy.requested")
    assert entry.changes == {"kind": "delete", "field": "email", "suppress": True}
    assert all(EMAIL not in json.dumps([t.args, t.kwargs, str(t.result)], default=str)
               for t in Task.objects.all())


def test_delete_request_for_an_unknown_identifier_is_done_and_says_so(account, capture):
    known_person(account)
    done = make_request(api(account, "admin"), capture, kind="delete",
                        value="nobody@example.com", suppress=False)
    assert done["state"] == "done"
    assert done["result"]["found"] is False and done["result"]["profiles"] == 0
    assert done["result"]["raw_events"] == 0
    assert "No profile has this identifier" in done["result"]["message"]
    assert Profile.objects.filter(account=account, merged_into__isnull=True).count() == 1


@pytest.mark.parametrize("roles", [("user_search",), ("marketer",), ("observer",)])
def test_a_role_without_the_right_gets_403_and_nothing_is_recorded(account, capture, roles):
    known_person(account)
    client = api(account, *roles)
    with capture(execute=True):
        response = client.post("/api/v1/privacy-requests/",
                               {"kind": "delete", "value": EMAIL}, format="json")
    assert response.status_code == 403, response.content
    assert client.get("/api/v1/privacy-requests/").status_code == 403
    assert not PrivacyRequest.objects.exists()


@pytest.mark.parametrize(("body", "code"), [
    ({"kind": "erase", "value": EMAIL}, "invalid_kind"),
    ({"kind": "delete", "value": "   "}, "invalid_value"),
    ({"kind": "delete", "value": 42}, "invalid_value"),
    ({"kind": "delete", "value": "a\x00b"}, "invalid_text"),  # refused by the API parser
    ({"kind": "delete", "value": "x" * 300}, "invalid_value"),
    ({"kind": "delete", "value": EMAIL, "field": "taxonomy"}, "unknown_field"),
    ({"kind": "delete", "value": EMAIL, "suppress": "yes"}, "invalid_suppress"),
])
def test_bad_requests_are_refused_with_a_code_and_change_nothing(account, body, code):
    known_person(account)
    response = api(account, "admin").post("/api/v1/privacy-requests/", body, format="json")
    assert response.status_code == 400, response.content
    assert response.json()["code"] == code
    assert not PrivacyRequest.objects.exists()
    assert not AuditEvent.objects.filter(action="privacy.requested").exists()


def test_requests_of_another_account_are_not_found(account, capture):
    made = make_request(api(account, "admin"), capture, kind="suppress", value=EMAIL)
    other = make_account("Globex")
    assert api(other, "admin").get(f"/api/v1/privacy-requests/{made['id']}/").status_code == 404
    assert api(other, "admin").get("/api/v1/privacy-requests/").json()["results"] == []


def test_suppressed_identifiers_are_not_stored_but_counted_and_answered_200(account, capture):
    journey = known_person(account)
    client = api(account, "admin")
    done = make_request(client, capture, kind="suppress", value=EMAIL)
    assert done["result"] == {"found": True, "suppressed": 2}
    assert Suppression.objects.filter(account=account).count() == 2
    assert tables_holding(EMAIL) != []  # suppression keeps the data, only hashes are listed
    assert not Suppression.objects.filter(value_hash__icontains=EMAIL).exists()
    before = RawEvent.objects.filter(account=account).count()

    identify(journey)  # the email (case and spaces do not matter) and the cookie
    journey.email = " Mason@Example.COM "
    identify(journey)
    reply = Client().get(f"/c/{account.aid}", {"_e": "pv", "_uid": COOKIE})
    assert reply.status_code == 200
    assert RawEvent.objects.filter(account=account).count() == before
    counts = dict(SuppressedCount.objects.filter(account=account)
                  .values_list("stream", "events"))
    assert counts == {"default": 3}

    # someone else still gets through
    other = Journey(account, cookie="visitor-9", email="eve@example.com")
    other.identify()
    assert RawEvent.objects.filter(account=account).count() == before + 1

    lifted = make_request(client, capture, kind="unsuppress", value=COOKIE)
    assert lifted["result"]["unsuppressed"] == 2
    identify(journey)
    assert RawEvent.objects.filter(account=account).count() == before + 2


def test_unsuppress_of_an_identifier_not_on_the_list_says_so(account, capture):
    done = make_request(api(account, "admin"), capture, kind="unsuppress", value=EMAIL)
    assert done["state"] == "done"
    assert done["result"] == {"unsuppressed": 0,
                              "message": "This identifier was not suppressed."}


def test_a_rebuild_after_a_deletion_does_not_bring_the_person_back(account, capture):
    journey = known_person(account)
    identify(journey, note="pending when deleted")
    make_request(api(account, "admin"), capture, kind="delete", value=COOKIE,
                 suppress=False)
    start_rebuild(account)
    run(account)
    assert not Profile.objects.filter(account=account).exists()
    assert tables_holding(EMAIL, COOKIE) == []


@pytest.mark.django_db(transaction=True)
def test_two_delete_requests_for_one_person_at_once_one_does_the_work():
    account = make_account("Acme")
    known_person(account)
    actor = system_actor(account)
    first = service.create_request(actor, "delete", EMAIL)
    second = service.create_request(actor, "delete", COOKIE)
    barrier = threading.Barrier(2)

    def work(pk):
        try:
            barrier.wait(timeout=30)
            service.run_request(pk)
        finally:
            connection.close()

    threads = [threading.Thread(target=work, args=(pk,)) for pk in (first.pk, second.pk)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    done = PrivacyRequest.objects.filter(pk__in=[first.pk, second.pk]).order_by("pk")
    assert [r.state for r in done] == ["done", "done"]
    assert sorted(r.result["profiles"] for r in done) == [0, 1]
    assert not Profile.objects.filter(account=account).exists()
    assert service.run_request(first.pk) == "not received"  # a repeated task does nothing


def test_a_delete_takes_experience_assignments_impressions_and_conversions(account, capture):
    config.invalidate()
    known_person(account)
    ab_test(account)
    _variant, uid = assigned(account, COOKIE)
    assigned(account, "someone-else")
    send(account, viewed(COOKIE, "a", uid), booked(COOKIE), stream="default")
    run(account)
    assert Conversion.objects.filter(visitor=COOKIE).exists()
    done = make_request(api(account, "admin"), capture, kind="delete", value=EMAIL)
    assert done["result"]["downstream"] >= 3
    for model in (Assignment, Impression, Conversion):
        assert not model.objects.filter(visitor=COOKIE).exists()
    assert Assignment.objects.filter(visitor="someone-else").exists()
    config.invalidate()
