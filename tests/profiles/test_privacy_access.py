"""Access requests (issue #14): one JSON document of everything held about the person, found
by any identifier, downloaded from the API; streamed, so 10,000 events cost bounded memory."""

from __future__ import annotations

import json
import tracemalloc
from datetime import UTC, datetime, timedelta

import pytest

from audiences.models import AudienceMembership, MembershipChange
from experiences import config
from profiles.collection.messages import IncomingEvent
from profiles.collection.store import store_events
from profiles.models import Identifier, Profile, ProfileConsent, ProfileEvent, RawEvent
from tests.experiences.decide_helpers import make_audience
from tests.experiences.test_tracking import booked, viewed
from tests.experiences.tracking_fixtures import ab_test, assigned
from tests.profiles.people import COOKIE, EMAIL, PHONE, known_person
from tests.profiles.privacy_helpers import api, make_request, q_sync
from tests.profiles.processing import run, send

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _sync(monkeypatch):
    q_sync(monkeypatch)
    config.invalidate()
    yield
    config.invalidate()


def _document(client, request_id):
    response = client.get(f"/api/v1/privacy-requests/{request_id}/document")
    assert response.status_code == 200, response.content
    assert response.streaming
    assert "attachment" in response["Content-Disposition"]
    return json.loads(b"".join(response.streaming_content))


def test_the_access_document_holds_every_piece_of_the_person(
        account, django_capture_on_commit_callbacks):
    known_person(account)
    ab_test(account)
    variant, uid = assigned(account, COOKIE)
    send(account, viewed(COOKIE, "a", uid), booked(COOKIE), stream="default")
    run(account)
    profile = Profile.objects.get(account=account, identifiers__value=EMAIL)
    ProfileConsent.objects.create(account=account, profile=profile, purpose="advertising",
                                  granted=False, at=datetime.now(UTC))
    audience = make_audience(account, "cuisine")
    AudienceMembership.objects.create(account=account, audience=audience, profile=profile)
    MembershipChange.objects.create(account=account, audience=audience, profile_id=profile.pk,
                                    kind="entry", cause="realtime")
    client = api(account, "data_manager")

    # found by any identifier, as written by the person (case and spaces do not matter)
    done = make_request(client, django_capture_on_commit_callbacks, kind="access",
                        value=" Mason@Example.com")
    assert done["state"] == "done", done
    assert done["result"]["found"] is True and done["profile_id"] == profile.pk
    doc = _document(client, done["id"])

    assert doc["found"] is True and doc["kind"] == "access"
    assert [p["id"] for p in doc["profiles"]] == [profile.pk]
    assert doc["profiles"][0]["field_values"]["phone"] == PHONE
    assert {(i["field"], i["value"]) for i in doc["identifiers"]} == {
        ("email", EMAIL), ("_uid", COOKIE)}
    assert [(c["purpose"], c["granted"]) for c in doc["consent"]] == [("advertising", False)]
    events = ProfileEvent.objects.filter(profile=profile).count()
    assert len(doc["profile_events"]) == events >= 5
    assert {e["raw_event_id"] for e in doc["profile_events"]} <= {r["id"] for r in
                                                                   doc["raw_events"]}
    assert [m["audience__name"] for m in doc["audience_memberships"]] == ["Cuisine"]
    assert [c["kind"] for c in doc["audience_history"]] == ["entry"]
    assert [a["variant__key"] for a in doc["experience_assignments"]] == [variant]
    assert [i["visitor"] for i in doc["experience_impressions"]] == [COOKIE]
    assert [c["goal__name"] for c in doc["experience_conversions"]] == ["booked"]
    assert doc["suppressed"] is False


def test_an_access_request_for_an_unknown_person_is_done_with_an_empty_document(
        account, django_capture_on_commit_callbacks):
    client = api(account, "admin")
    done = make_request(client, django_capture_on_commit_callbacks, kind="access",
                        value="nobody@example.com")
    assert done["result"]["found"] is False
    doc = _document(client, done["id"])
    assert doc["profiles"] == [] and doc["raw_events"] == [] and doc["found"] is False


def test_the_document_needs_a_done_access_request_and_pii_view(
        account, django_capture_on_commit_callbacks):
    known_person(account)
    client = api(account, "admin")
    deleted = make_request(client, django_capture_on_commit_callbacks, kind="suppress",
                           value=EMAIL)
    response = client.get(f"/api/v1/privacy-requests/{deleted['id']}/document")
    assert response.status_code == 409 and response.json()["code"] == "not_ready"
    for roles in (("user_search",), ("marketer",)):
        assert api(account, *roles).get(
            f"/api/v1/privacy-requests/{deleted['id']}/document").status_code == 403


def test_an_access_request_for_10000_events_is_streamed_in_bounded_memory(
        account, django_capture_on_commit_callbacks):
    start = datetime(2026, 11, 1, tzinfo=UTC)
    for batch in range(10):
        store_events(account, "web", [
            IncomingEvent(message={"userId": "heavy-1", "event": "page",
                                   "properties": {"path": f"/p/{batch}/{i}", "pad": "x" * 200}},
                          message_id=f"h-{batch}-{i}", user_id="heavy-1", event="page",
                          event_at=start + timedelta(seconds=batch * 1000 + i))
            for i in range(1000)], source="test", received_at=start)
    profile = Profile.objects.create(account=account, first_seen=start, last_seen=start)
    Identifier.objects.create(account=account, field="user_id", value="heavy-1",
                              profile=profile, first_seen=start, last_seen=start)
    ProfileEvent.objects.bulk_create([
        ProfileEvent(account=account, profile=profile, raw_event_id=raw_id, stream="web",
                     event="page", at=at, properties={"path": path})
        for raw_id, at, path in RawEvent.objects.filter(account=account)
        .values_list("id", "event_at", "message__properties__path")], batch_size=2000)
    client = api(account, "admin")
    done = make_request(client, django_capture_on_commit_callbacks, kind="access",
                        value="heavy-1")
    response = client.get(f"/api/v1/privacy-requests/{done['id']}/document")
    assert response.status_code == 200

    tracemalloc.start()
    size, largest = 0, 0
    parts = []
    try:
        for piece in response.streaming_content:
            size += len(piece)
            largest = max(largest, len(piece))
            parts.append(len(piece))
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert size > 3_000_000  # 10,000 raw events and 10,000 profile events
    assert largest < 200_000  # sent in pieces, not as one document
    assert peak < size / 2, (peak, size)
