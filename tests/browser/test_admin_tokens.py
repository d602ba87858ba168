"""The admin in a real browser: a token's secret is shown once and only once, tokens belong to
the current account, the account switcher changes it, and an Observer sees no admin pages.

Screenshots of every step land in test-artifacts/screenshots/.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import expect

from cdp_site.access import authenticate_access_token
from cdp_site.models import AccessToken, AuditEvent
from tests.conftest import PASSWORD, add_membership, make_account, make_user

pytestmark = [
    pytest.mark.browser,
    # The live server sees only committed rows; the seeded role matrix is restored after
    # each flush so that every browser test finds it.
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

SECRET_PATTERN = re.compile(r"stk_[A-Za-z0-9_-]{20,}")


def test_admin_creates_a_token_sees_its_secret_once_and_switches_accounts(browser):
    acme = make_account("Acme Retail")
    globex = make_account("Globex Media")
    ada = make_user("ada", acme, roles=["admin", "marketer", "observer"])
    add_membership(ada, globex, ["admin"])
    page = browser.page

    browser.log_in("ada", PASSWORD)
    expect(page.get_by_test_id("current-account")).to_have_text("Acme Retail")
    # Styled: the live server serves the admin's and Strata's stylesheets.
    header_bg = page.evaluate("getComputedStyle(document.getElementById('header')).backgroundColor")
    assert header_bg == "rgb(29, 49, 84)", header_bg
    browser.shot("index")

    page.get_by_role("link", name="Access tokens", exact=True).first.click()
    expect(page.get_by_test_id("empty-list")).to_contain_text("No access tokens in Acme Retail")
    browser.shot("token-list-empty")
    page.locator(".object-tools").get_by_role("link", name="Add access token").click()

    expect(page.get_by_role("heading", name="New access token")).to_be_visible()
    browser.shot("token-add-empty")
    # The account is named explicitly, never taken from the session's current one (#12).
    expect(page.locator("#id_account")).to_have_value("")
    page.locator("#id_account").select_option(label="Acme Retail")
    page.get_by_label("Description").fill("Nightly export to the warehouse")
    # Only the roles Ada holds are offered, as checkboxes.
    offered = page.locator("input[type=checkbox][name=roles]")
    expect(offered).to_have_count(3)
    page.get_by_role("checkbox", name=re.compile(r"^Marketer\b")).check()
    page.get_by_role("checkbox", name=re.compile(r"^Observer\b")).check()
    page.get_by_role("radio", name="30 days").check()
    browser.shot("token-add-filled")
    with page.expect_navigation():
        page.get_by_role("button", name="Create access token").click()

    secret_box = page.get_by_test_id("secret")
    expect(secret_box).to_be_visible()
    secret = secret_box.input_value().strip()
    assert SECRET_PATTERN.fullmatch(secret), secret
    assert "Marketer" in page.content() and "Observer" in page.content()
    browser.shot("token-secret-shown-once")

    token = AccessToken.objects.get(account=acme)
    assert secret.startswith(token.prefix)
    assert token.masked not in secret
    assert token.description == "Nightly export to the warehouse"
    assert sorted(token.roles.values_list("code", flat=True)) == ["marketer", "observer"]
    assert token.expires_at is not None
    assert AuditEvent.objects.filter(
        account=acme, action=AuditEvent.Action.TOKEN_CREATED
    ).exists()

    # Done: back to the list, where only the masked prefix is shown.
    with page.expect_navigation():
        page.get_by_role("link", name="Done").click()
    assert secret not in page.content()
    expect(page.locator("#result_list")).to_contain_text(token.masked)
    expect(page.locator("#result_list")).to_contain_text("Nightly export to the warehouse")
    browser.shot("token-list-masked")

    # The browser's Back button does not bring the secret back either: the page is no-store
    # and the answer to a POST, so Chromium will not show it from its cache.
    try:
        page.go_back()
    except PlaywrightError as exc:
        assert "ERR_CACHE_MISS" in str(exc), exc
        expect(page).to_have_url(re.compile(r"^chrome-error:"))
    page.wait_for_load_state()
    assert secret not in page.content()
    browser.shot("token-after-back-button")

    # The change page shows the masked prefix only.
    browser.goto(f"/admin/cdp_site/accesstoken/{token.pk}/change/")
    expect(page.locator("#content")).to_contain_text(token.masked)
    assert secret not in page.content()
    browser.shot("token-change-masked")

    # And reloading the list never shows it again.
    browser.goto("/admin/cdp_site/accesstoken/")
    page.reload()
    assert secret not in page.content()
    expect(page.locator("#result_list")).to_contain_text(token.masked)

    # The shown secret is the real thing.
    assert authenticate_access_token(secret, "127.0.0.1") == token
    assert authenticate_access_token(secret[:-1] + ("A" if secret[-1] != "A" else "B"),
                                     "127.0.0.1") is None

    # The audit log names who created it.
    browser.goto("/admin/cdp_site/auditevent/")
    expect(page.locator("#result_list")).to_contain_text(AuditEvent.Action.TOKEN_CREATED.label)
    expect(page.locator("#result_list")).to_contain_text("ada")
    assert secret not in page.content()
    browser.shot("audit-log")

    # Switch to Globex with the switcher in the header: its token list is empty.
    switcher = page.get_by_test_id("account-switcher")
    switcher.locator("summary").click()
    expect(switcher.get_by_role("button", name=re.compile("Globex Media"))).to_be_visible()
    browser.shot("account-switcher-open")
    with page.expect_navigation():
        switcher.get_by_role("button", name=re.compile("Globex Media")).click()
    expect(page.get_by_test_id("current-account")).to_have_text("Globex Media")
    expect(page.locator("h1")).to_have_text("Globex Media")
    browser.shot("switched-to-second-account")
    browser.goto("/admin/cdp_site/accesstoken/")
    expect(page.get_by_test_id("current-account")).to_have_text("Globex Media")
    expect(page.locator("#result_list")).to_have_count(0)
    assert token.masked not in page.content()
    assert "Nightly export" not in page.content()
    browser.shot("second-account-token-list-empty")

    # Acme's token is not reachable from Globex either: the admin answers as for a token
    # that does not exist.
    response = browser.goto(f"/admin/cdp_site/accesstoken/{token.pk}/change/")
    assert response is not None
    assert page.url.endswith("/admin/") or response.status == 404, (page.url, response.status)
    assert token.masked not in page.content()
    assert "Nightly export" not in page.content()


def test_observer_sees_only_what_it_may_view_and_cannot_add_tokens(browser):
    acme = make_account("Acme Retail")
    make_user("olga", acme, roles=["observer"])
    page = browser.page

    browser.log_in("olga", PASSWORD)
    expect(page.get_by_test_id("current-account")).to_have_text("Acme Retail")
    # Observers may view experiences and goals (ROLES.md), nothing of the account's settings.
    expect(page.get_by_test_id("no-admin-access")).to_have_count(0)
    assert page.locator("a[href*='/experiences/experience/']").count() > 0
    expect(page.get_by_role("link", name="Access tokens")).to_have_count(0)
    expect(page.get_by_role("link", name="Memberships")).to_have_count(0)
    assert page.locator("a[href*='/cdp_site/accesstoken/']").count() == 0
    assert page.locator("a[href*='/cdp_site/membership/']").count() == 0
    # A single account: no switcher, just its name.
    expect(page.get_by_test_id("account-switcher")).to_have_count(0)
    browser.shot("observer-index")

    response = browser.goto("/admin/cdp_site/accesstoken/add/")
    assert response is not None
    refused = response.status == 403 or "/accesstoken/add/" not in page.url
    assert refused, (response.status, page.url)
    assert page.locator("input[name=description]").count() == 0
    expect(page.get_by_test_id("forbidden")).to_be_visible()
    browser.shot("observer-token-add-refused")

    response = browser.goto("/admin/cdp_site/membership/")
    assert response is not None and response.status == 403
    assert AccessToken.objects.count() == 0
