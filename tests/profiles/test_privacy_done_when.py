"""Issue #14's "Done when": one person from a first anonymous visit to an identified customer
on two devices withdraws their advertising consent, asks for access (every piece of their
data is in the document), then is deleted: every text and JSON column of every table is
searched for their identifiers and a marker value, and nothing is found; new events for them
are suppressed and counted; a rebuild does not bring them back. On the way, no log line and
no django-q2 task carries an identifier or the marker (item 6)."""

from __future__ import annotations

import json
import logging

import pytest
from django.test import Client
from django_q.models import Task

from profiles.models import Profile, RawEvent, SuppressedCount
from profiles.privacy.exports import may_export
from profiles.processing.rebuild import start_rebuild
from tests.profiles.conftest import basic_auth
from tests.profiles.people import Journey
from tests.profiles.privacy_helpers import api, make_request, q_sync, tables_holding
from tests.profiles.processing import run
from tests.profiles.raw_events import run_aggregator

pytestmark = pytest.mark.django_db

EMAIL = "wren.okafor@example.org"
PHONE = "+44 20 7946 0958"
LAPTOP, PHONE_COOKIE = "cookie-laptop-5f1e", "cookie-phone-90ab"
MARKER = "Quokka-Marker-4417"


def segment(journey: Journey, path: str, **body) -> None:
    reply = journey.client.post(f"/v1/{path}", data={"anonymousId": journey.cookie, **body},
                                content_type="application/json",
                                HTTP_AUTHORIZATION=basic_auth(journey.secret))
    assert reply.status_code == 200, reply.content


def stored_events(account) -> int:
    return RawEvent.objects.filter(account=account).count()


def test_one_person_from_first_visit_to_deletion(account, monkeypatch, caplog,
                                                 django_capture_on_commit_callbacks):
    q_sync(monkeypatch)
    caplog.set_level(logging.DEBUG)
    laptop = Journey(account, cookie=LAPTOP, email=EMAIL)
    laptop.page_view()  # a first, anonymous visit
    segment(laptop, "identify", traits={"email": EMAIL, "nickname": MARKER})
    run(account)
    phone = Journey(account, cookie=PHONE_COOKIE, email=EMAIL)
    phone.page_view(taxonomy="hiking")  # a second device
    segment(phone, "identify", traits={"email": EMAIL.upper()})  # as typed on a phone
    run(account)
    laptop.crm_record(phone=PHONE, first_name=MARKER)
    segment(phone, "track", event="consent_changed",
            context={"consent": {"categoryPreferences": {"advertising": False,
                                                         "analytics": True}}})
    run(account)
    run_aggregator()
    stranger = Journey(account, cookie="cookie-stranger", email="sam@example.com")
    stranger.identify()
    [person] = Profile.objects.filter(account=account, merged_into__isnull=True,
                                      identifiers__value=EMAIL)
    assert not may_export(account.pk, person.pk, ["advertising"])
    assert may_export(account.pk, person.pk, ["analytics"])
    client = api(account, "data_manager")

    # access, by the identifier the person gives (their phone's cookie)
    access = make_request(client, django_capture_on_commit_callbacks, kind="access",
                          value=PHONE_COOKIE)
    assert access["state"] == "done"
    response = client.get(f"/api/v1/privacy-requests/{access['id']}/document")
    text = b"".join(response.streaming_content).decode()
    doc = json.loads(text)
    for piece in (EMAIL, LAPTOP, PHONE_COOKIE, MARKER, PHONE, "hiking", "cuisine"):
        assert piece in text, piece
    assert {(c["purpose"], c["granted"]) for c in doc["consent"]} == {
        ("advertising", False), ("analytics", True)}
    assert len(doc["profiles"]) == 2  # the survivor and the profile merged into it
    assert len(doc["raw_events"]) == stored_events(account) - 1  # all but the stranger's
    assert len(doc["profile_events"]) == len(doc["raw_events"])

    # delete, by email as the person writes it
    deleted = make_request(client, django_capture_on_commit_callbacks, kind="delete",
                           value=" Wren.Okafor@Example.org")
    assert deleted["state"] == "done" and deleted["result"]["profiles"] == 1
    assert tables_holding(EMAIL, LAPTOP, PHONE_COOKIE, MARKER, "7946 0958") == []
    assert Profile.objects.filter(account=account, merged_into__isnull=True).count() == 1

    # new events for them are suppressed (the same 200) and counted
    before = stored_events(account)
    laptop.client.get(f"/c/{account.aid}", {"_e": "pv"})  # the laptop's cookie
    segment(phone, "identify", traits={"email": EMAIL})
    reply = Client().post("/collect/json/crm_users", data={"origin.email": EMAIL.title()},
                          content_type="application/json", HTTP_X_API_KEY=laptop.secret)
    assert reply.status_code == 200
    assert stored_events(account) == before
    assert sum(SuppressedCount.objects.filter(account=account)
               .values_list("events", flat=True)) == 3
    run(account)

    # a rebuild does not bring them back
    start_rebuild(account)
    run(account)
    assert Profile.objects.filter(account=account, merged_into__isnull=True).count() == 1
    assert tables_holding(EMAIL, LAPTOP, PHONE_COOKIE, MARKER) == []

    # item 6: nothing of theirs in the logs (captured: the tasks log their names) or tasks
    assert "privacy-request-" in caplog.text
    for needle in (EMAIL, LAPTOP, PHONE_COOKIE, MARKER, "7946 0958"):
        assert needle.lower() not in caplog.text.lower(), needle
    for task in Task.objects.all():
        assert EMAIL not in json.dumps([task.args, task.kwargs, str(task.result)], default=str)
