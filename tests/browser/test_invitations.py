"""Inviting a member in a real browser: the Admin's member page sends the invitation, and the
invited person opens the emailed link, is refused a weak password, and joins with a good one.

Screenshots of every step land in test-artifacts/screenshots/.
"""

from __future__ import annotations

import re

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from playwright.sync_api import expect

from cdp_site.models import Membership
from tests.conftest import PASSWORD, make_account, make_user

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


def test_an_invited_person_joins_through_the_emailed_link(browser):
    acme = make_account("Acme Retail")
    make_user("ada", acme, roles=["admin"])
    page = browser.page
    browser.log_in("ada", PASSWORD)
    browser.goto("/admin/cdp_site/membership/add/")
    expect(page.get_by_role("heading", name="Invite a member")).to_be_visible()
    page.get_by_label("Email").fill("grace@example.com")
    page.get_by_role("checkbox", name=re.compile(r"^Marketer\b")).check()
    browser.shot("invite-filled")
    with page.expect_navigation():
        page.get_by_role("button", name="Send invitation").click()
    expect(page.locator(".messagelist")).to_contain_text("Invited grace@example.com")

    (message,) = mail.outbox
    link = re.search(r"https?://\S+/invitations/\S+/", message.body)
    assert link is not None and message.to == ["grace@example.com"]
    page.context.clear_cookies()  # now Grace, in a browser that never signed in
    page.goto(link.group(0).replace("http://127.0.0.1:8000", browser.base_url))
    expect(page.get_by_test_id("invitation")).to_contain_text("Acme Retail")
    browser.shot("invitation-page")
    page.locator("#id_password1").fill("password")
    page.locator("#id_password2").fill("password")
    with page.expect_navigation():
        page.get_by_test_id("accept").click()
    expect(page.locator(".errorlist")).to_contain_text("too common")
    browser.shot("weak-password-refused")
    page.locator("#id_password1").fill("tangerine-otter-compass-41")
    page.locator("#id_password2").fill("tangerine-otter-compass-41")
    with page.expect_navigation():
        page.get_by_test_id("accept").click()
    page.wait_for_load_state()
    browser.shot("joined")
    grace = get_user_model().objects.get(email="grace@example.com")
    assert Membership.objects.filter(account=acme, user=grace).exists()
    assert "/admin/login" not in page.url
