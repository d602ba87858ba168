"""Consent per profile and purpose from ``context.consent.categoryPreferences`` (what
strata.js sends), through the real pipeline: newest choice wins by event time, merges take
the union, changed purposes are passed to later steps, the profile API shows them."""

from __future__ import annotations

import pytest

from profiles.models import ProfileConsent
from profiles.processing import consent
from profiles.processing.pipeline import pipeline_steps, process_batch
from tests.conftest import make_token, token_client
from tests.profiles.calculated_helpers import DAY, now, page, run, send_at, shop_schema
from tests.profiles.processing import profile_with

pytestmark = pytest.mark.django_db

ANN = {"email": "ann@example.com"}


@pytest.fixture
def shop(account):
    shop_schema(account)
    return account


def consented(who, **prefs):
    message = page(who)
    message["context"] = {"consent": {"categoryPreferences": prefs}}
    return message


def choices(account, identifier):
    profile = profile_with(account, identifier)
    return {c.purpose: c.granted for c in consent.profile_consents(account.pk, profile.pk)}


def test_choices_are_recorded_per_purpose(shop):
    send_at(shop, now() - DAY, consented(ANN, analytics=True, personalization=False),
            page(ANN))  # an event without consent changes nothing
    run(shop)
    assert choices(shop, "ann@example.com") == {"analytics": True, "personalization": False}
    pid = profile_with(shop, "ann@example.com").pk
    assert consent.granted_purposes(shop.pk, pid) == {"analytics"}
    row = ProfileConsent.objects.get(account=shop, purpose="analytics")
    assert row.raw_event_id is not None and row.at < now()


def test_the_newest_choice_wins_even_when_it_arrives_first(shop):
    t = now() - DAY
    send_at(shop, t, consented(ANN, personalization=True))
    run(shop)
    send_at(shop, t - DAY, consented(ANN, personalization=False, ads=False))  # late, older
    run(shop)
    assert choices(shop, "ann@example.com") == {"personalization": True, "ads": False}
    send_at(shop, t + DAY / 2, consented(ANN, personalization=False))  # newer
    run(shop)
    assert choices(shop, "ann@example.com") == {"personalization": False, "ads": False}


def test_within_one_batch_the_newest_event_wins(shop):
    t = now() - DAY
    send_at(shop, t, consented(ANN, ads=True), consented(ANN, ads=False),
            consented(ANN, ads=True))
    run(shop)
    assert choices(shop, "ann@example.com") == {"ads": True}


def test_bad_preferences_are_ignored(shop):
    for prefs in ("yes", ["ads"], {"ads": "true", "": True, " x ": False}):
        message = page(ANN)
        message["context"] = {"consent": {"categoryPreferences": prefs}}
        send_at(shop, now(), message)
    message = page(ANN)
    message["context"] = {"consent": "all"}
    send_at(shop, now(), message)
    run(shop)
    assert choices(shop, "ann@example.com") == {"x": False}


def test_merge_takes_the_union_with_the_newest_choice(shop):
    t = now() - 3 * DAY
    send_at(shop, t, consented({"_uid": "c1"}, ads=True, analytics=True))
    send_at(shop, t - DAY, consented(ANN, ads=False, email=True))
    send_at(shop, t + DAY, consented(ANN, analytics=False))
    run(shop)
    send_at(shop, t + 2 * DAY, page({**ANN, "_uid": "c1"}))
    run(shop)
    survivor = profile_with(shop, "ann@example.com")
    assert profile_with(shop, "c1") == survivor
    assert choices(shop, "ann@example.com") == {"ads": True, "analytics": False,
                                                "email": True}
    assert set(ProfileConsent.objects.filter(account=shop)
               .values_list("profile_id", flat=True)) == {survivor.pk}


def test_changed_consents_are_passed_to_later_steps(shop):
    seen = []

    def spy(batch):
        seen.append(batch.changed_consents)

    send_at(shop, now() - DAY, consented(ANN, ads=True, email=True))
    process_batch(shop.pk, steps=[*pipeline_steps(), spy])
    pid = profile_with(shop, "ann@example.com").pk
    send_at(shop, now(), consented(ANN, ads=True, email=False))  # only email changes
    process_batch(shop.pk, steps=[*pipeline_steps(), spy])
    assert seen == [{pid: {"ads", "email"}}, {pid: {"email"}}]


def test_the_profile_api_shows_consents_and_calculated_attributes(shop):
    from tests.profiles.calculated_helpers import define

    define(shop, name="views", aggregate="count", event="page", window_days=7)
    send_at(shop, now() - DAY, consented(ANN, ads=True), page(ANN))
    run(shop)
    _token, secret = make_token(shop, ["data_manager"])
    body = token_client(secret).get("/api/v1/profiles/email/ann@example.com").json()
    assert body["calculated_attributes"] == {"views": 2}
    assert [{k: c[k] for k in ("purpose", "granted")} for c in body["consents"]] == [
        {"purpose": "ads", "granted": True}]


def test_consents_stay_in_their_account(shop, other_account):
    shop_schema(other_account)
    send_at(shop, now(), consented(ANN, ads=True))
    send_at(other_account, now(), consented(ANN, ads=False))
    run(shop)
    run(other_account)
    assert choices(shop, "ann@example.com") == {"ads": True}
    assert choices(other_account, "ann@example.com") == {"ads": False}
