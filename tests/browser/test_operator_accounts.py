"""The site operator adds an account in the admin (issue #12 item 2: the admin's add page was a
403 for the user `make run` prints), and an account Admin sees enabling and the quota read-only.

Screenshots of every step land in test-artifacts/screenshots/.
"""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from cdp_site.models import Account, AuditEvent
from tests.conftest import PASSWORD, make_account, make_user

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


def test_the_operator_adds_an_account_and_an_admin_cannot_disable_theirs(browser):
    acme = make_account("Acme Retail")
    make_user("root", acme, roles=["admin"], is_superuser=True, is_staff=True)
    make_user("ada", acme, roles=["admin"])
    page = browser.page
    browser.log_in("root", PASSWORD)
    browser.goto("/admin/cdp_site/account/add/")
    expect(page.get_by_role("heading", name="Add account")).to_be_visible()
    page.locator("#id_slug").fill("acme-sandbox")
    page.locator("#id_name").fill("Acme Sandbox")
    page.locator("#id_monthly_event_quota").fill("100000")
    browser.shot("operator-add-account")
    with page.expect_navigation():
        page.locator("input[name=_save]").click()
    expect(page.locator(".messagelist")).to_contain_text("Acme Sandbox")
    browser.shot("operator-account-list")
    sandbox = Account.objects.get(slug="acme-sandbox")
    assert sandbox.monthly_event_quota == 100000
    assert AuditEvent.objects.for_account(sandbox).get().action == "account.created"

    page.context.clear_cookies()
    browser.log_in("ada", PASSWORD)
    browser.goto(f"/admin/cdp_site/account/{acme.pk}/change/")
    expect(page.locator("#id_retention_days")).to_be_visible()
    expect(page.locator("#id_enabled")).to_have_count(0)
    expect(page.locator("#id_monthly_event_quota")).to_have_count(0)
    expect(page.locator(".field-enabled")).to_be_visible()
    browser.shot("admin-account-settings")
