"""Consent purposes as account settings (issue #14, item 3): an account lists its purposes
with what no answer means; choices for other purposes are counted and not stored; exports
read the default."""

from __future__ import annotations

import pytest

from profiles.models import ConsentPurpose, ProfileConsent, UnknownPurposeCount
from profiles.privacy.exports import may_export
from tests.profiles.conftest import basic_auth
from tests.profiles.people import Journey, known_person
from tests.profiles.privacy_helpers import api
from tests.profiles.processing import run

pytestmark = pytest.mark.django_db


def choose(journey: Journey, **choices: bool) -> None:
    reply = journey.client.post(
        "/v1/track", data={"anonymousId": journey.cookie, "event": "consent_changed",
                           "context": {"consent": {"categoryPreferences": choices}}},
        content_type="application/json", HTTP_AUTHORIZATION=basic_auth(journey.secret))
    assert reply.status_code == 200, reply.content
    run(journey.account)


def test_an_admin_lists_purposes_and_other_roles_cannot(account):
    admin = api(account, "admin")
    made = admin.post("/api/v1/consent-purposes/", {
        "name": "advertising", "description": "Ads on other sites"}, format="json")
    assert made.status_code == 201, made.content
    assert made.json()["granted_by_default"] is False  # denied unless said otherwise
    admin.post("/api/v1/consent-purposes/", {"name": "analytics",
                                             "granted_by_default": True}, format="json")
    listed = admin.get("/api/v1/consent-purposes/").json()["results"]
    assert [p["name"] for p in listed] == ["advertising", "analytics"]
    changed = admin.patch("/api/v1/consent-purposes/advertising/",
                          {"description": "Ads", "name": "ignored"}, format="json")
    assert changed.status_code == 200 and changed.json()["name"] == "advertising"
    again = admin.post("/api/v1/consent-purposes/", {"name": "analytics"}, format="json")
    assert again.status_code == 409 and again.json()["code"] == "duplicate"
    bad = admin.post("/api/v1/consent-purposes/", {"name": "ads & more"}, format="json")
    assert bad.status_code == 400 and "code" in bad.json()
    for role in ("data_manager", "marketer"):
        assert api(account, role).post("/api/v1/consent-purposes/", {"name": "email"},
                                       format="json").status_code == 403
    assert admin.delete("/api/v1/consent-purposes/analytics/").status_code == 204
    assert list(ConsentPurpose.objects.filter(account=account)
                .values_list("name", flat=True)) == ["advertising"]


def test_choices_for_unlisted_purposes_are_counted_not_stored(account):
    journey = known_person(account)
    choose(journey, advertising=True, adds=True)  # no purposes listed yet: both kept
    assert set(ProfileConsent.objects.values_list("purpose", flat=True)) == {
        "advertising", "adds"}
    ConsentPurpose.objects.create(account=account, name="advertising")
    ConsentPurpose.objects.create(account=account, name="analytics", granted_by_default=True)
    choose(journey, advertising=False, adds=False, addz=True)
    choose(journey, addz=False)
    consents = dict(ProfileConsent.objects.values_list("purpose", "granted"))
    assert consents == {"advertising": False, "adds": True}  # adds: from before, untouched
    unknown = api(account, "admin").get("/api/v1/consent-purposes/unknown/").json()
    assert [(u["purpose"], u["events"]) for u in unknown] == [("addz", 2), ("adds", 1)]
    assert UnknownPurposeCount.objects.filter(account=account).count() == 2

    pid = journey.profile().pk
    assert may_export(account.pk, pid, ["analytics"])  # no answer: granted by default
    assert not may_export(account.pk, pid, ["advertising"])
    choose(journey, analytics=False)
    assert not may_export(account.pk, pid, ["analytics"])  # an answer beats the default
