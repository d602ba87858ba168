"""The privacy page in a real browser: a Data Manager asks for a person's data by email and
sees the request done (the list polls while it runs), then deletes them."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.conftest import PASSWORD, make_account, make_user
from tests.profiles.people import EMAIL, known_person
from tests.profiles.privacy_helpers import q_sync

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


def test_a_data_manager_asks_for_access_then_deletes_a_person(browser, monkeypatch):
    q_sync(monkeypatch)  # the live server's thread runs the tasks as they are queued
    account = make_account("Acme Travel", slug="acme")
    make_user("dana", account, roles=["data_manager"])
    known_person(account)
    page = browser.page

    browser.log_in("dana", PASSWORD)
    browser.goto("/profiles/")
    page.locator("nav.mainnav").get_by_role("link", name="Privacy").click()
    expect(page.get_by_role("heading", name="Privacy requests")).to_be_visible()
    expect(page.get_by_test_id("no-requests")).to_be_visible()
    browser.shot("empty")

    page.get_by_test_id("privacy-kind").select_option("access")
    page.get_by_test_id("privacy-value").fill(EMAIL)
    page.get_by_test_id("privacy-submit").click()
    row = page.locator("[data-testid=privacy-requests] tbody tr").first
    expect(row.get_by_test_id("request-state")).to_have_text("Done")
    expect(row).to_contain_text("m***@example.com")
    expect(row.get_by_test_id("download")).to_be_visible()
    browser.shot("access-done")

    page.get_by_test_id("privacy-kind").select_option("delete")
    page.get_by_test_id("privacy-value").fill(EMAIL.upper())
    page.get_by_test_id("privacy-submit").click()
    row = page.locator("[data-testid=privacy-requests] tbody tr").first
    expect(row.get_by_test_id("request-state")).to_have_text("Done")
    expect(row).to_contain_text("profiles 1")
    assert EMAIL not in page.content()
    browser.shot("delete-done")
