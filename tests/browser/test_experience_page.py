"""The experience pages in a real browser: a marketer opens Experiences from the nav, reads the
list, opens an A/B test with two weeks of results (table against control, suggested winner,
the three charts drawn from hourly snapshots), pauses and resumes it, completes it with the
suggested winner; a bandit's page draws its weights history (a stacked area: equal shares
stay visible), says when it reweights next and reweights now at a click; a segmented
experience shows its variants by audience. Neither the page nor the results table (three
variants, every column) scrolls sideways in a 1280 px window. An observer reads the same page
without any action.

Screenshots of every step land in test-artifacts/screenshots/.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from experiences import lifecycle, results
from experiences.models import BanditWeights, Experience, Phase
from tests.conftest import PASSWORD, make_account, make_user
from tests.experiences import lifecycle_helpers as build
from tests.experiences.results_helpers import visitors

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

DAYS = 15
FITS = """() => { const wrap = document.querySelector('[data-testid=results-table]')
  .closest('.table-wrap');
  return [document.body.scrollWidth, document.body.clientWidth, wrap.scrollWidth,
          wrap.clientWidth]; }"""


def assert_fits(page) -> None:
    """Neither the page nor the results table scrolls sideways in a 1280 px window."""
    body_scroll, body_width, table_scroll, table_width = page.evaluate(FITS)
    assert body_scroll <= body_width, (body_scroll, body_width)
    assert table_scroll <= table_width, (table_scroll, table_width)


def two_weeks_of_results(exp: Experience, rates: dict[str, float], per_day: int) -> None:
    """Visitors day by day since the phase started, a snapshot after each day."""
    start = timezone.now() - timedelta(days=DAYS, hours=1)
    Phase.objects.filter(experience=exp, number=exp.phase).update(started_at=start)
    for day in range(DAYS):
        at = start + timedelta(days=day, hours=12)
        for key, rate in rates.items():
            visitors(exp, key, seen=per_day, converted=round(per_day * rate * (0.8 + day % 3 / 5)),
                     at=at, repeat=2)
        results.snapshot(exp, now=at + timedelta(hours=11))


def bandit_history(exp: Experience) -> None:
    start = timezone.now() - timedelta(days=3)
    Phase.objects.filter(experience=exp, number=exp.phase).update(started_at=start)
    weights = {"book-now": 1 / 3, "reserve": 1 / 3, "check-dates": 1 / 3}
    rates = {"book-now": 0.04, "reserve": 0.10, "check-dates": 0.05}
    for hour in range(24, 72, 6):
        at = start + timedelta(hours=hour)
        for key, rate in rates.items():
            seen = round(400 * weights[key]) + 1
            visitors(exp, key, seen=seen, converted=round(seen * rate), at=at)
        shift = (hour - 24) / 48
        weights = {"book-now": 0.3 - 0.25 * shift, "reserve": 0.4 + 0.5 * shift,
                   "check-dates": 0.3 - 0.25 * shift}
        BanditWeights.objects.create(account=exp.account, experience=exp, phase=exp.phase,
                                     at=at + timedelta(minutes=30), weights=weights)
        results.snapshot(exp, now=at + timedelta(minutes=40))


def test_a_marketer_reads_results_and_completes_an_experience(browser):
    account = make_account("Acme Travel", slug="acme")
    make_user("mara", account, roles=["marketer"])
    make_user("olly", account, roles=["observer"])
    hero = lifecycle.activate(build.ab_test(
        account, key="homepage-hero", name="Homepage hero",
        description="Does an autumn-escape hero book more trips than the evergreen one?",
        variants=[{"key": "control", "name": "Evergreen hero", "base": True,
                   "value": "Explore the world",
                   "content": {"headline": "Explore the world", "cta": "See destinations"}},
                  {"key": "autumn", "name": "Autumn escape", "value": "Your autumn escape",
                   "content": {"headline": "Your autumn escape starts here",
                               "cta": "Book autumn deals"}}]))
    two_weeks_of_results(hero, {"control": 0.03, "autumn": 0.045}, per_day=160)
    bandit = lifecycle.activate(build.ab_test(
        account, key="book-button", name="Book button", distribution="bandit",
        variants=[{"key": "book-now", "name": "Book now", "base": True},
                  {"key": "reserve", "name": "Reserve your trip"},
                  {"key": "check-dates", "name": "Check dates"}]))
    bandit_history(bandit)
    lifecycle.activate(build.segmented(account))
    page = browser.page

    browser.log_in("mara", PASSWORD)
    browser.goto("/dashboard/")
    page.locator("nav.mainnav").get_by_role("link", name="Experiences").click()
    expect(page.get_by_role("heading", name="Experiences")).to_be_visible()
    row = page.locator("tr[data-experience='homepage-hero']")
    expect(row.get_by_test_id("status")).to_have_text("Active")
    expect(row.get_by_test_id("visitors")).to_have_text(f"{2 * DAYS * 160:,}")
    expect(page.locator("tr[data-experience='cuisine-banner']")).to_contain_text("Segmented")
    browser.shot("list")

    row.get_by_role("link", name="Homepage hero").click()
    expect(page.get_by_test_id("experience-title")).to_contain_text("Homepage hero")
    table = page.get_by_test_id("results-table")
    autumn = table.locator("tr[data-variant='autumn']")
    expect(autumn.get_by_test_id("visitors")).to_have_text(f"{DAYS * 160:,}")
    expect(autumn.get_by_test_id("uplift")).to_contain_text("+")
    expect(page.get_by_test_id("winner")).to_contain_text("Suggested winner: autumn")
    for chart in ("rate-chart", "best-chart", "split-chart"):
        page.wait_for_function(f"document.getElementById('{chart}').chart !== undefined")
    points = page.evaluate("document.getElementById('rate-chart').chart.data.datasets"
                           ".map(d => d.data.length)")
    assert points == [DAYS + 1, DAYS + 1]  # a snapshot a day, then the results now
    assert_fits(page)
    browser.shot("ab-test")

    page.get_by_test_id("action-pause").click()
    expect(page.get_by_test_id("messages")).to_contain_text("Homepage hero paused.")
    expect(page.get_by_test_id("status")).to_have_text("Paused")
    browser.shot("paused")
    page.get_by_test_id("action-resume").click()
    expect(page.get_by_test_id("status")).to_have_text("Active")

    page.get_by_test_id("action-complete").click()
    expect(page.get_by_test_id("winner-select")).to_have_value("autumn")  # the suggestion
    browser.shot("complete-menu")
    page.get_by_test_id("confirm-complete").click()
    expect(page.get_by_test_id("messages")).to_contain_text("Everyone now gets Autumn escape.")
    expect(page.get_by_test_id("status")).to_have_text("Completed")
    expect(page.get_by_test_id("actions")).to_have_count(0)
    browser.shot("completed")

    browser.goto("/experiences/book-button/")
    page.wait_for_function("document.getElementById('split-chart').chart !== undefined")
    split = page.evaluate("document.getElementById('split-chart').chart.data.datasets"
                          ".map(d => [d.label, d.data.length])")
    assert split == [["book-now", 10], ["reserve", 10], ["check-dates", 10]]
    # a stacked area: the equal first split shows three bands, not one line over two others
    stacked = page.evaluate("(() => { const c = document.getElementById('split-chart').chart;"
                            " return [c.options.scales.y.stacked,"
                            " c.data.datasets.map(d => d.fill)]; })()")
    assert stacked == [True, ["origin", "-1", "-1"]]
    assert_fits(page)
    expect(page.get_by_test_id("split-chart")).to_contain_text("8 reweightings")
    expect(page.get_by_test_id("srm-warning")).to_have_count(0)
    expect(page.get_by_test_id("next-reweight")).to_contain_text("next at the next run")
    browser.shot("bandit")
    page.get_by_test_id("reweight-now").click()
    expect(page.locator("body")).to_contain_text("Reweighted: book-now")
    expect(page.get_by_test_id("split-chart")).to_contain_text("9 reweightings")
    browser.shot("bandit-reweighted")

    browser.goto("/experiences/cuisine-banner/")
    expect(page.get_by_test_id("variants")).to_contain_text("New Italian recipes")
    expect(page.get_by_test_id("variants")).to_contain_text("Cuisine")
    assert_fits(page)
    browser.shot("segmented")

    page.context.clear_cookies()
    browser.log_in("olly", PASSWORD)
    browser.goto("/experiences/book-button/")
    expect(page.get_by_test_id("results-table")).to_be_visible()
    expect(page.get_by_test_id("actions")).to_have_count(0)
    browser.shot("observer")
