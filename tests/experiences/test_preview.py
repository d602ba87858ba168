""""What would this visitor see": the experience page's preview and a profile's experiences page
answer what the decision API answers (the same code), with the reason in words, and write
nothing; the profile page lists the variants the person already got."""

from __future__ import annotations

import pytest
from django.test import Client

from experiences import config, lifecycle
from experiences.decide import decide
from experiences.models import Assignment, Impression
from tests.experiences import lifecycle_helpers as build
from tests.experiences.decide_helpers import make_visitor, set_consent
from tests.experiences.test_pages import signed_in

pytestmark = pytest.mark.django_db


@pytest.fixture
def client(account) -> Client:
    return signed_in(account, "marketer")


def preview_rows(html: str) -> list[tuple[str, str, str]]:
    """(experience, variant, reason label) per preview row."""
    rows = []
    for chunk in html.split('data-testid="preview-row" data-experience="')[1:]:
        key = chunk.split('"', 1)[0]
        variant = chunk.split('data-testid="preview-variant">', 1)[1].split("<", 1)[0]
        label = chunk.split('data-testid="preview-reason">', 1)[1].split("<", 1)[0]
        rows.append((key, variant, label))
    return rows


def test_the_experience_page_shows_what_the_decision_api_would_serve(account, client) -> None:
    exp = lifecycle.activate(build.ab_test(account))
    answers = {}
    for uid in (f"visitor-{n}" for n in range(12)):
        page = client.get(f"/experiences/{exp.key}/", {"visitor": uid}).content.decode()
        [(key, variant, label)] = preview_rows(page)
        assert (key, label) == (exp.key, "Split")
        answers[uid] = variant
    assert not Assignment.objects.exists()  # the preview wrote nothing
    assert set(answers.values()) == {"control", "bold"}
    for uid, variant in answers.items():  # the decision API agrees, and then stores it
        assert decide(account.pk, uid, keys=[exp.key]).decisions[0].variant_key == variant
    assert Assignment.objects.count() == len(answers)
    sticky = client.get(f"/experiences/{exp.key}/", {"visitor": "visitor-0"}).content.decode()
    assert "Already assigned this variant" in sticky


def test_reasons_targeting_consent_and_drafts(account, client) -> None:
    gold = build.audience(account, "gold")
    segmented = lifecycle.activate(build.segmented(account, variants=[
        {"key": "base", "value": "Deals", "base": True},
        {"key": "gold", "value": "Gold perks", "audience": "gold", "priority": 1}]))
    member = make_visitor(account, "uid-gold", email="ada@example.com", audiences=[gold])
    make_visitor(account, "uid-plain")

    by_email = client.get(f"/experiences/{segmented.key}/",
                          {"visitor": "email=ada@example.com"}).content.decode()
    assert preview_rows(by_email) == [(segmented.key, "gold", "Targeting match")]
    assert f"#{member.pk}" in by_email
    by_profile = client.get(f"/experiences/{segmented.key}/", {"visitor": f"#{member.pk}"})
    assert preview_rows(by_profile.content.decode())[0][1] == "gold"
    plain = client.get(f"/experiences/{segmented.key}/", {"visitor": "uid-plain"})
    assert preview_rows(plain.content.decode()) == [(segmented.key, "base", "Not eligible")]

    set_consent(member, "personalization", False)
    config.invalidate()
    withheld = client.get(f"/experiences/{segmented.key}/", {"visitor": "uid-gold"})
    assert preview_rows(withheld.content.decode()) == [
        (segmented.key, "base", "Consent withheld")]

    draft = build.ab_test(account, key="draft-test")
    drafted = client.get(f"/experiences/{draft.key}/", {"visitor": "uid-plain"})
    assert preview_rows(drafted.content.decode()) == [(draft.key, "nothing", "Draft")]
    unknown = client.get(f"/experiences/{draft.key}/", {"visitor": "email=nobody@x.org"})
    assert "No profile has email" in unknown.content.decode()


def test_a_profiles_experiences_page_shows_would_see_and_got(account, client) -> None:
    hero = lifecycle.activate(build.ab_test(account))
    profile = make_visitor(account, "uid-ada", email="ada@example.com")
    page = client.get(f"/experiences/profile/{profile.pk}/").content.decode()
    [(key, would_get, label)] = preview_rows(page)
    assert (key, label) == (hero.key, "Split")
    assert 'data-testid="nothing-got"' in page
    assert not Assignment.objects.exists()

    decide(account.pk, "uid-ada", keys=[hero.key])
    assignment = Assignment.objects.get()
    Impression.objects.create(account=account, experience=hero, variant=assignment.variant,
                              phase=1, visitor="uid-ada", count=3)
    page = client.get(f"/experiences/profile/{profile.pk}/").content.decode()
    got = page.split('data-testid="got-variant">', 1)[1].split("<", 1)[0].strip()
    assert got == (assignment.variant.name or assignment.variant.key) == would_get
    assert 'data-testid="got-impressions">3<' in page
    admin = signed_in(account, "admin", name="adam")
    profile_page = admin.get(f"/profiles/{profile.pk}/").content.decode()
    assert f'href="/experiences/profile/{profile.pk}/"' in profile_page
    assert client.get("/experiences/profile/999999/").status_code == 404
