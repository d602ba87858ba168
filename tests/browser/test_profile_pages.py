"""Profile search and the profile page in a real browser: a person made through the collection
paths and the pipeline (page view with taxonomy=cuisine, identify with an email on the same
cookie, a CRM record) is found by email; their page shows fields, identifiers, the timeline and
why the identifiers are linked. A member whose roles lack PII view sees the same profile
masked, and the raw values are nowhere in what their browser received.

Screenshots of every step land in test-artifacts/screenshots/.
"""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import SCREENSHOTS
from tests.conftest import PASSWORD, make_account, make_user
from tests.profiles.people import COOKIE, EMAIL, PHONE, known_person, role_without_pii

pytestmark = [
    pytest.mark.browser,
    # The live server sees only committed rows; seeded data is restored after each flush.
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


def viewport_shot(browser, step: str) -> None:
    """A screenshot of what is on screen, named like browser.shot."""
    path = SCREENSHOTS / f"{browser.test_name}-{len(browser.shots) + 1:02d}-{step}.png"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    browser.page.screenshot(path=str(path))
    browser.shots.append(path)


def test_a_data_manager_finds_a_person_by_email_and_reads_their_profile(browser):
    account = make_account("Acme Travel", slug="acme")
    make_user("dana", account, roles=["data_manager"])
    make_user("rita", account, roles=[role_without_pii()])
    profile = known_person(account).profile()
    page = browser.page

    browser.log_in("dana", PASSWORD)
    browser.goto("/streams/")
    page.locator("nav.mainnav").get_by_role("link", name="Profiles").click()
    expect(page.get_by_role("heading", name="Profiles")).to_be_visible()
    expect(page.get_by_test_id("profile-results")).to_be_visible()  # recently seen
    browser.shot("profiles")

    page.get_by_test_id("search-q").fill(EMAIL)
    page.get_by_role("button", name="Search").click()
    row = page.locator(f"tr[data-profile-id='{profile.pk}']")
    expect(row).to_be_visible()
    expect(row).to_contain_text(EMAIL)
    expect(row).to_contain_text(COOKIE)
    browser.shot("search-by-email")

    row.get_by_test_id("profile-link").click()
    expect(page.get_by_test_id("profile-title")).to_contain_text(f"Profile #{profile.pk}")
    fields = page.get_by_test_id("profile-fields")
    expect(fields.get_by_test_id("value-email")).to_have_text(EMAIL)
    expect(fields.get_by_test_id("value-taxonomy")).to_have_text("cuisine")
    expect(fields.get_by_test_id("value-loyalty_tier")).to_have_text("gold")
    expect(fields.get_by_test_id("value-phone")).to_have_text(PHONE)
    expect(fields.get_by_test_id("value-preferred_activities")).to_contain_text("hiking")
    identifiers = page.get_by_test_id("profile-identifiers")
    expect(identifiers.locator("[data-identifier-field=email]")).to_contain_text(EMAIL)
    expect(identifiers.locator("[data-identifier-field=_uid]")).to_contain_text(COOKIE)
    timeline = page.get_by_test_id("timeline")
    expect(timeline.locator(".tl-item")).to_have_count(3)
    expect(timeline.locator(".tl-name")).to_have_text(["record", "identify", "page"])
    expect(page.get_by_test_id("identity")).to_contain_text("came with")
    expect(page.get_by_test_id("health")).to_contain_text("No conflicts")
    expect(page.get_by_test_id("danger-zone")).to_be_visible()
    browser.shot("profile-page")
    viewport_shot(browser, "profile-top")

    # Someone who may view profiles but not PII.
    page.context.clear_cookies()
    browser.log_in("rita", PASSWORD)
    browser.goto(f"/profiles/?q={EMAIL}")
    row = page.locator(f"tr[data-profile-id='{profile.pk}']")
    expect(row).to_contain_text("m***@example.com")
    expect(row).not_to_contain_text(EMAIL)
    expect(page.get_by_test_id("masked-note")).to_be_visible()
    browser.shot("search-masked")

    row.get_by_test_id("profile-link").click()
    fields = page.get_by_test_id("profile-fields")
    expect(fields.get_by_test_id("value-email")).to_have_text("m***@example.com")
    expect(fields.get_by_test_id("value-phone")).to_have_text("+1-***-**39")
    expect(fields.get_by_test_id("value-first_name")).to_have_text("M***")
    expect(fields.get_by_test_id("value-taxonomy")).to_have_text("cuisine")
    expect(page.get_by_test_id("profile-identifiers")).to_contain_text("m***@example.com")
    expect(page.get_by_test_id("danger-zone")).to_have_count(0)
    html = page.content()
    for raw in (EMAIL, PHONE, "Mason"):
        assert raw not in html, raw
    browser.shot("profile-masked")


def test_a_merged_away_id_opens_the_survivor_and_the_merge_is_explained(browser):
    from profiles.models import Profile
    from tests.profiles.people import install_schema
    from tests.profiles.processing import run, send

    account = make_account("Acme Travel", slug="acme")
    make_user("dana", account, roles=["data_manager"])
    install_schema(account)
    send(account, {"_uid": "cookie-x", "taxonomy": "travel"}, stream="default")
    run(account)
    send(account, {"email": "ann@example.com"}, stream="default")
    run(account)
    survivor = Profile.objects.get(identifiers__value="cookie-x")
    gone = Profile.objects.get(identifiers__value="ann@example.com")
    send(account, {"email": "ann@example.com", "_uid": "cookie-x"}, stream="default")
    send(account, {"email": "bob@example.com", "_uid": "cookie-x"}, stream="default")
    run(account)
    page = browser.page

    browser.log_in("dana", PASSWORD)
    browser.goto(f"/profiles/{gone.pk}/")
    expect(page.get_by_test_id("profile-title")).to_contain_text(f"Profile #{survivor.pk}")
    expect(page.get_by_test_id("merged-notice")).to_contain_text(f"#{gone.pk} was merged")
    log = page.get_by_test_id("identity-log")
    expect(log.locator("[data-kind=merge]")).to_contain_text(f"#{gone.pk} merged into this one")
    expect(log.locator("[data-kind=merge]")).to_contain_text("linked by cookie-x")
    conflict = log.locator("[data-kind=conflict]")
    expect(conflict).to_contain_text("both profiles hold a email")
    expect(conflict).to_contain_text("cookie-x (_uid) stayed here")
    expect(page.get_by_test_id("health")).to_contain_text("1 conflict")
    browser.shot("merged-profile")
    page.get_by_test_id("identity").scroll_into_view_if_needed()
    viewport_shot(browser, "why-linked")
