"""The profile page's calculated attributes and consent, in headless Chromium."""

from __future__ import annotations

import pytest

from tests.browser.conftest import browser  # noqa: F401  (the fixture)
from tests.conftest import PASSWORD, make_account, make_user
from tests.profiles.calculated_helpers import (
    DAY,
    EXAMPLES,
    define,
    now,
    page,
    run,
    send_at,
    shop_schema,
    track,
)
from tests.profiles.processing import profile_with

pytestmark = pytest.mark.django_db(transaction=True)

ANN = {"email": "ann@example.com"}


def test_profile_page_in_chromium(browser):  # noqa: F811
    account = make_account("Shop")
    make_user("dm", account, roles=["data_manager"])
    shop_schema(account)
    for example in EXAMPLES:
        define(account, **example)
    consent = page(ANN)
    consent["context"] = {"consent": {"categoryPreferences": {"personalization": True,
                                                              "ads": False}}}
    send_at(account, now() - 2 * DAY, consent, page(ANN), page(ANN),
            track("order", ANN, revenue=120.5), track("order", ANN, revenue=80),
            track("product viewed", ANN, product_id="sku-42"),
            track("product viewed", ANN, product_id="sku-42"),
            track("product viewed", ANN, product_id="sku-7"))
    run(account)
    pid = profile_with(account, "ann@example.com").pk
    browser.log_in("dm", PASSWORD)
    browser.goto(f"/profiles/{pid}/")
    section = browser.page.locator("[data-testid=calculated-attributes]")
    section.scroll_into_view_if_needed()
    browser.shot("profile")
    assert section.locator("[data-testid=attribute-1_week_page_views]").inner_text() == "3"
    assert section.locator("[data-testid=attribute-90_day_revenue]").inner_text() == "200.5"
    assert section.locator("[data-testid=attribute-most_viewed_product]").inner_text() \
        == "sku-42"
    assert "no events" in section.locator(
        "[data-testid=attribute-last_7_days_login]").inner_text()
    consents = browser.page.locator("[data-testid=consents]")
    assert "granted" in consents.locator("[data-purpose=personalization]").inner_text()
    assert "withheld" in consents.locator("[data-purpose=ads]").inner_text()
