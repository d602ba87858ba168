"""Every product page lays out on a phone (390 px) and at 1280 px with a long account name:
no page scrolls sideways (wide tables scroll inside their card), the top bar collapses its
sections behind a menu button on a phone, and at 1280 px the top bar stays one row high.

Screenshots of every page at 390 px land in test-artifacts/screenshots/.
"""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from experiences import lifecycle
from profiles.schema.lytics import install_lytics_schema
from tests.browser.layout import sticking_out, watch_console
from tests.conftest import PASSWORD, add_membership, make_account, make_user
from tests.experiences import lifecycle_helpers as build
from tests.experiences.decide_helpers import make_visitor
from tests.profiles.raw_events import ago, run_aggregator, store, track

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

PAGES = ["/dashboard/", "/streams/", "/streams/web/", "/streams/web/live/", "/failed-events/",
         "/schema/", "/profiles/", "/audiences/", "/audiences/new/", "/experiences/",
         "/experiences/new/", "/experiences/hero-banner/", "/usage/"]


def test_every_page_fits_a_phone_and_a_long_account_name(browser):
    account = make_account("Demo Travel and Recipes International Holdings", slug="acme")
    admin = make_user("administrator", account, roles=["admin"])
    add_membership(admin, make_account("Zeta Sandbox", slug="sandbox"), ["admin"])  # a switcher
    install_lytics_schema(account)
    store(account, [track("Order Completed", price=9.5, sku="A-1")] * 3, received_at=ago(hours=1))
    run_aggregator()
    lifecycle.activate(build.ab_test(account))
    make_visitor(account, "uid-ada", email="ada@example.com")
    page = browser.page
    errors = watch_console(page)

    browser.log_in("administrator", PASSWORD)
    browser.goto("/dashboard/")
    expect(page.get_by_test_id("current-account")).to_contain_text("Demo Travel and Recipes")
    browser.shot("long-name-1280")
    bar = page.locator("header.topbar")
    assert bar.bounding_box()["height"] <= 64, "the top bar wraps at 1280 px"
    problems = {}
    page.set_viewport_size({"width": 390, "height": 844})
    for path in PAGES:
        browser.goto(path)
        past_the_edge = sticking_out(page)
        if past_the_edge:
            problems[path] = past_the_edge
        browser.shot(path.strip("/").replace("/", "-") or "home")
    assert problems == {}

    browser.goto("/experiences/")
    nav = page.locator("nav.mainnav")
    expect(nav).to_be_hidden()
    page.get_by_test_id("nav-toggle").click()
    expect(nav).to_be_visible()
    expect(nav.get_by_role("link", name="Audiences")).to_be_visible()
    browser.shot("menu-open")
    nav.get_by_role("link", name="Audiences").click()
    expect(page.get_by_role("heading", name="Audiences", exact=True)).to_be_visible()
    assert errors == []
