"""The check exports make before sending a profile (issue #14): every purpose granted, no
identifier suppressed, asked at the moment of sending."""

from __future__ import annotations

import pytest

from audiences.models import AudienceMembership
from profiles.models import Profile
from profiles.privacy.exports import exportable, may_export
from profiles.privacy.suppress import suppress_values
from tests.experiences.decide_helpers import make_audience
from tests.profiles.conftest import basic_auth
from tests.profiles.people import COOKIE, EMAIL, Journey, known_person
from tests.profiles.processing import run

pytestmark = pytest.mark.django_db


def consent(journey: Journey, **choices: bool) -> None:
    reply = journey.client.post(
        "/v1/track", data={"anonymousId": journey.cookie, "event": "consent_changed",
                           "context": {"consent": {"categoryPreferences": choices}}},
        content_type="application/json", HTTP_AUTHORIZATION=basic_auth(journey.secret))
    assert reply.status_code == 200, reply.content
    run(journey.account)


def test_consent_withdrawn_between_a_membership_change_and_its_export_stops_it(account):
    journey = known_person(account)
    consent(journey, advertising=True, analytics=True)
    profile = Profile.objects.get(account=account, identifiers__value=EMAIL)
    assert may_export(account.pk, profile.pk, ["advertising"])
    assert may_export(account.pk, profile.pk, ["advertising", "analytics"])
    assert not may_export(account.pk, profile.pk, ["email"])  # no answer: denied

    AudienceMembership.objects.create(account=account, audience=make_audience(account, "ads"),
                                      profile=profile)  # the membership change
    consent(journey, advertising=False, analytics=True)  # withdrawn before the export runs
    assert not may_export(account.pk, profile.pk, ["advertising"])
    assert may_export(account.pk, profile.pk, ["analytics"])


def test_a_suppressed_person_is_never_exported(account):
    journey = known_person(account)
    consent(journey, advertising=True)
    other = Journey(account, cookie="visitor-2", email="bob@example.com")
    other.identify()
    consent(other, advertising=True)
    ids = set(Profile.objects.filter(account=account).values_list("id", flat=True))
    assert exportable(account.pk, ids, ["advertising"]) == ids
    suppress_values(account, [COOKIE], subject="s")
    bob = Profile.objects.get(account=account, identifiers__value="bob@example.com")
    assert exportable(account.pk, ids, ["advertising"]) == {bob.pk}
    assert exportable(account.pk, [], ["advertising"]) == set()
