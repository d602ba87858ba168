"""The stream explorer in a real browser: the demo events seeded through the collection core and
aggregated, the ingress chart drawn by Chart.js, raw keys with samples, search and hiding, the
live view picking up a new event without a reload, failed events and usage.

Screenshots of every step land in test-artifacts/screenshots/.
"""

from __future__ import annotations

import base64

import pytest
import requests
from django.core.management import call_command
from playwright.sync_api import expect

from profiles.explorer import aggregate
from profiles.models import RawKey
from tests.browser.conftest import SCREENSHOTS
from tests.conftest import PASSWORD, make_account, make_user
from tests.profiles.conftest import make_write_key

pytestmark = [
    pytest.mark.browser,
    # The live server sees only committed rows; seeded data is restored after each flush.
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


def viewport_shot(browser, step: str) -> None:
    """A screenshot of what is on screen (a detail of a long page), named like browser.shot."""
    path = SCREENSHOTS / f"{browser.test_name}-{len(browser.shots) + 1:02d}-{step}.png"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    browser.page.screenshot(path=str(path))
    browser.shots.append(path)


def chart_total(page, canvas_id: str) -> int:
    return page.evaluate(
        "(id) => { const c = window.Chart && Chart.getChart(id);"
        " return c ? c.data.datasets[0].data.reduce((a, b) => a + b, 0) : -1; }",
        canvas_id,
    )


def test_a_data_admin_explores_the_demo_streams(browser, live_server):
    aggregate.forget_fences()
    demo = make_account("Demo Travel", slug="demo")
    make_user("ada", demo, roles=["admin"])
    call_command("seed_demo_events", days=2)
    _key, secret = make_write_key(demo, stream="web")
    page = browser.page

    browser.log_in("ada", PASSWORD)
    browser.goto("/streams/")
    expect(page.get_by_test_id("current-account")).to_have_text("Demo Travel")
    web_row = page.locator("tr[data-stream=web]")
    expect(web_row).to_be_visible()
    expect(web_row.locator("svg.sparkline")).to_be_visible()
    browser.shot("streams")

    web_row.get_by_role("link", name="web").click()
    expect(page.get_by_test_id("stream-name")).to_have_text("web")
    # Chart.js (vendored, served as a static file) drew the ingress series.
    expect(page.locator("#ingress-chart[data-drawn='1']")).to_be_attached()
    assert chart_total(page, "ingress-chart") > 0
    box = page.locator("#ingress-chart").bounding_box()
    assert box and box["width"] > 600 and box["height"] > 200
    rows = page.locator("tbody.keyrow")
    assert rows.count() > 20
    expect(page.get_by_test_id("violations")).to_contain_text("Trip Booked")
    browser.shot("stream-page")

    category = page.locator("tbody[data-key='properties.content.category']")
    expect(category.get_by_test_id("samples")).to_be_hidden()
    category.locator(".keyname-toggle").click()
    expect(category.get_by_test_id("samples")).to_be_visible()
    expect(category.get_by_test_id("samples")).to_contain_text(" > ")  # "Europe > Italy"
    category.scroll_into_view_if_needed()
    viewport_shot(browser, "key-samples")

    page.get_by_placeholder("Search keys", exact=False).fill("traits")
    expect(page.get_by_test_id("key-count")).to_contain_text("matching the filters")
    keys = [k for k in page.locator("tbody.keyrow").evaluate_all(
        "rows => rows.map(r => r.dataset.key)")]
    assert keys and all("traits" in k for k in keys), keys
    tier = page.locator("tbody[data-key='traits.loyalty_tier']")
    tier.get_by_test_id("hide-key").click()
    expect(tier).to_have_count(0)
    assert RawKey.objects.get(account=demo, stream="web", key="traits.loyalty_tier").hidden
    page.get_by_test_id("show-hidden").check()
    expect(page.locator("tbody.keyrow.is-hidden[data-key='traits.loyalty_tier']")).to_be_visible()
    browser.shot("keys-search-and-hidden")

    page.get_by_role("group", name="Period").get_by_role("link", name="7d").click()
    expect(page.get_by_role("group", name="Interval").locator("[aria-current=true]")).to_have_text(
        "day")
    assert chart_total(page, "ingress-chart") > 0
    browser.shot("stream-7-days")

    browser.goto("/streams/web/live/")
    events = page.locator("#live-events > li")
    expect(events.first).to_be_visible()
    page.evaluate("window.__sameDocument = true")
    browser.shot("live")
    auth = "Basic " + base64.b64encode(f"{secret}:".encode()).decode()
    sent = requests.post(f"{live_server.url}/v1/track", timeout=10, headers={
        "Authorization": auth}, json={
        "event": "Browser Test Event", "anonymousId": "visitor-42",
        "properties": {"plan": "family", "nested": {"deep": [1, 2, 3]}}})
    assert sent.status_code == 200, sent.text
    newest = events.first
    expect(newest).to_contain_text("Browser Test Event", timeout=10_000)
    assert page.evaluate("window.__sameDocument") is True  # no reload
    newest.locator("summary").click()
    expect(newest.locator("pre.json")).to_contain_text('"deep": [')
    viewport_shot(browser, "live-new-event")

    page.get_by_role("link", name="Failed events", exact=True).first.click()
    failed_rows = page.locator("tbody.failedrow")
    expect(failed_rows.first).to_be_visible()
    failed_rows.first.get_by_test_id("show-body").click()
    expect(failed_rows.first.get_by_test_id("failed-body")).to_be_visible()
    viewport_shot(browser, "failed-events")

    page.get_by_role("link", name="Usage", exact=True).click()
    expect(page.locator("#usage-chart[data-drawn='1']")).to_be_attached()
    assert chart_total(page, "usage-chart") > 0
    browser.shot("usage")


def test_a_marketer_is_refused_and_a_data_manager_sees_no_usage(browser):
    acme = make_account("Acme Retail")
    make_user("mia", acme, roles=["marketer"])
    make_user("dan", acme, roles=["data_manager"])
    page = browser.page

    browser.log_in("mia", PASSWORD)
    response = browser.goto("/streams/")
    assert response.status == 403
    expect(page.get_by_test_id("forbidden")).to_be_visible()
    browser.shot("marketer-refused")
    with page.expect_navigation():
        page.get_by_role("button", name="Sign out").click()

    browser.log_in("dan", PASSWORD)
    browser.goto("/streams/")
    expect(page.get_by_test_id("no-streams")).to_be_visible()
    expect(page.get_by_role("link", name="Usage", exact=True)).to_have_count(0)
    browser.shot("data-manager-empty")
