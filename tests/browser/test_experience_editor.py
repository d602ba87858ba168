"""The experience editor in a real browser: an Experience Manager (who may also make goals)
opens New from the experience list, picks A/B, names two variants with JSON content (the
preview follows the JSON, a typo is caught), sets custom weights (the split bar follows),
targets an audience shown with its size, creates the goal from an event Strata has seen on the
stream it arrives on (its count shown), watches the blockers go from "no primary goal" to
ready, saves, activates; then edits the running test's weights, is told first that this
starts phase 2, confirms, and the page shows phase 2. A draft's page links each activation
blocker to its fix in the editor. The experience page previews what a visitor would see and a
profile's experiences page what the person would see and got. No page scrolls sideways at
1280 or 390 px, and no page logs a console error.

Screenshots of every step land in test-artifacts/screenshots/.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from experiences import config, lifecycle
from experiences.models import Assignment, Experience, Phase
from profiles.models import Profile, ProfileEvent
from tests.browser.layout import sticking_out, watch_console
from tests.conftest import PASSWORD, make_account, make_user
from tests.experiences import lifecycle_helpers as build
from tests.experiences.decide_helpers import make_visitor

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

def assert_fits(browser: Any, step: str) -> None:
    """No sideways scrolling at 1280 px, nor on a phone (390 px)."""
    page = browser.page
    assert sticking_out(page) == [], f"{step} overflows at 1280 px"
    page.set_viewport_size({"width": 390, "height": 844})
    try:
        assert sticking_out(page) == [], f"{step} overflows at 390 px"
        browser.shot(f"{step}-390")
    finally:
        page.set_viewport_size({"width": 1280, "height": 800})


def seen_events(account: Any, event: str, stream: str, n: int) -> None:
    profile = Profile.objects.create(account=account, first_seen=timezone.now(),
                                     last_seen=timezone.now())
    ProfileEvent.objects.bulk_create([
        ProfileEvent(account=account, profile=profile, raw_event_id=i, stream=stream,
                     event=event, at=timezone.now() - timedelta(minutes=i))
        for i in range(n)])


def test_an_experience_manager_builds_activates_and_reweights_an_ab_test(browser):
    account = make_account("Acme Travel", slug="acme")
    make_user("exa", account, roles=["experience_manager", "goal_manager"])
    seen_events(account, "trip_booked", "default", 7)
    seen_events(account, "trip_booked", "web", 5)
    seen_events(account, "newsletter_signup", "web", 3)
    travellers = build.audience(account, "travellers")
    travellers.size = 1234
    travellers.save()
    page = browser.page
    errors = watch_console(page)

    browser.log_in("exa", PASSWORD)
    browser.goto("/experiences/")
    page.get_by_test_id("new-experience").click()
    expect(page.get_by_role("heading", name="New experience")).to_be_visible()
    page.get_by_test_id("exp-name").fill("Homepage hero")
    expect(page.get_by_test_id("exp-key")).to_have_value("homepage-hero")

    editors = page.get_by_test_id("variant-editor")
    expect(editors).to_have_count(2)
    first, second = editors.nth(0), editors.nth(1)
    first.get_by_test_id("variant-name").fill("Evergreen")
    first.get_by_test_id("variant-value").fill('{"headline": "Explore the world"}')
    expect(first.get_by_test_id("variant-preview")).to_contain_text("Explore the world")
    second.get_by_test_id("variant-name").fill("Autumn escape")
    second.get_by_test_id("variant-value").fill('{"headline": "Your autumn escape"')
    expect(second.get_by_test_id("json-error").first).to_contain_text("not valid JSON")
    second.get_by_test_id("variant-value").fill('{"headline": "Your autumn escape"}')
    expect(second.get_by_test_id("json-error").first).to_have_text("")
    expect(second.get_by_test_id("variant-preview")).to_contain_text("Your autumn escape")

    page.get_by_test_id("distribution").select_option("custom")
    first.get_by_test_id("variant-weight").fill("70")
    second.get_by_test_id("variant-weight").fill("20")
    expect(page.get_by_test_id("split")).to_contain_text("must add up to 100 %")
    expect(page.get_by_test_id("blockers")).to_contain_text("add up to 90 %")
    second.get_by_test_id("variant-weight").fill("30")
    expect(page.locator(".split-segment[data-variant='autumn-escape']")).to_contain_text("30 %")

    page.locator("input[name=target][value=audiences]").check()
    expect(page.get_by_test_id("target-audiences")).to_contain_text("1,234 profiles")
    page.get_by_test_id("target-travellers").check()

    blockers = page.get_by_test_id("blockers")
    expect(blockers).to_contain_text("needs a primary goal")
    browser.shot("blockers")
    blockers.get_by_test_id("fix-no_primary_goal").click()
    expect(page.locator("#goals")).to_be_in_viewport()
    page.get_by_test_id("new-goal").locator("summary").click()
    page.get_by_test_id("goal-event").select_option("trip_booked")
    expect(page.get_by_test_id("goal-stream")).to_contain_text("Any stream (12)")
    expect(page.get_by_test_id("goal-stream")).to_contain_text("default (7)")
    page.get_by_test_id("goal-name").fill("Trip booked")
    page.get_by_test_id("create-goal").click()
    expect(page.get_by_test_id("goal-trip-booked")).to_be_checked()
    expect(page.locator(".goal-pick[data-goal='trip-booked']")).to_contain_text(
        "12 events in 30 days")
    expect(page.get_by_test_id("ready")).to_have_text("Nothing blocks activation.")
    assert_fits(browser, "editor")
    browser.shot("editor-ready")

    page.get_by_test_id("save").click()
    expect(page.get_by_test_id("experience-title")).to_contain_text("Homepage hero")
    exp = Experience.objects.get(account=account, key="homepage-hero")
    assert [(v.key, v.weight, v.value) for v in exp.variants.order_by("position")] == [
        ("evergreen", 0.7, {"headline": "Explore the world"}),
        ("autumn-escape", 0.3, {"headline": "Your autumn escape"})]
    assert [a.slug for a in exp.target_audiences.all()] == ["travellers"]
    assert exp.experience_goals.get().goal.stream == ""  # any stream counts
    expect(page.get_by_test_id("audience-stat")).to_contain_text("Travellers")
    page.get_by_test_id("action-activate").click()
    expect(page.get_by_test_id("status")).to_have_text("Active")

    page.get_by_test_id("edit-experience").click()
    expect(page.get_by_test_id("exp-key")).to_be_disabled()
    page.get_by_test_id("variant-weight").nth(0).fill("50")
    page.get_by_test_id("variant-weight").nth(1).fill("50")
    notice = page.get_by_test_id("phase-notice")
    expect(notice).to_contain_text("Saving starts phase 2")
    browser.shot("new-phase")
    page.get_by_test_id("save").click()
    expect(page.get_by_test_id("save-problems")).to_contain_text("starts a new phase")
    assert Phase.objects.filter(experience=exp).count() == 1
    page.get_by_test_id("phase-reason").fill("even split after a week")
    page.get_by_test_id("phase-confirm").check()
    page.get_by_test_id("save").click()
    expect(page.get_by_test_id("phases")).to_contain_text("Phase 2")
    assert Phase.objects.get(experience=exp, number=2).reason == "even split after a week"
    assert errors == []


def test_blockers_link_to_their_fix_and_previews_write_nothing(browser):
    account = make_account("Acme Travel", slug="acme")
    make_user("mara", account, roles=["marketer", "user_search"])
    draft = build.ab_test(account, key="draft-hero", goals=[])
    hero = lifecycle.activate(build.ab_test(account, key="live-hero", name="Live hero"))
    profile = make_visitor(account, "uid-ada", email="ada@example.com")
    config.invalidate()
    page = browser.page
    errors = watch_console(page)

    browser.log_in("mara", PASSWORD)
    browser.goto(f"/experiences/{draft.key}/")
    card = page.get_by_test_id("activation-blockers")
    expect(card).to_contain_text("needs a primary goal")
    assert_fits(browser, "draft")
    card.get_by_test_id("fix-no_primary_goal").click()
    expect(page.get_by_role("heading", name="Edit Hero banner")).to_be_visible()
    expect(page.locator("#goals")).to_be_in_viewport()
    expect(page.get_by_test_id("goal-list")).to_contain_text("not seen in 30 days")
    page.get_by_test_id("goal-booked").check()
    expect(page.get_by_test_id("ready")).to_be_visible()
    browser.shot("fixed")

    browser.goto(f"/experiences/{hero.key}/")
    page.get_by_test_id("preview-visitor").fill("email=ada@example.com")
    page.get_by_test_id("preview-submit").click()
    answer = page.get_by_test_id("preview-answer")
    expect(answer.get_by_test_id("preview-reason")).to_have_text("Split")
    expect(answer).to_contain_text(f"#{profile.pk}")
    would = answer.get_by_test_id("preview-variant").inner_text()
    assert not Assignment.objects.exists()
    assert_fits(browser, "preview")

    browser.goto(f"/experiences/profile/{profile.pk}/")
    row = page.locator(f"[data-testid=preview-row][data-experience='{hero.key}']")
    expect(row.get_by_test_id("preview-variant")).to_have_text(would)
    expect(page.get_by_test_id("nothing-got")).to_be_visible()
    assert_fits(browser, "profile-experiences")
    assert not Assignment.objects.exists()
    assert errors == []
