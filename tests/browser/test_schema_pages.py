"""The schema pages in a real browser: a Data Manager adds a field and a mapping, tries the
mapping on the stream's latest raw events (the Evaluate preview, htmx), sees the draft banner,
and publishes. Screenshots of every step land in test-artifacts/screenshots/."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from playwright.sync_api import expect

from profiles.collection.messages import IncomingEvent
from profiles.collection.store import accept
from profiles.models import Field, Mapping, SchemaVersion
from profiles.schema.drafts import save_field, save_mapping
from profiles.schema.versions import live_version, publish
from tests.browser.conftest import SCREENSHOTS
from tests.conftest import PASSWORD, make_account, make_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

CRM_RECORDS = [
    {"origin.email": "mason@example.com",
     "response": {"loyalty_tier": "Gold", "preferred_activities": ["hiking", "wine"]}},
    {"origin.email": "ana@example.com", "response": {"loyalty_tier": "SILVER"}},
    {"origin.email": "li@example.com", "response": {"preferred_activities": ["spa"]}},
    {"origin.email": "bo@example.com", "response": {"loyalty_tier": 3}},
]


def viewport_shot(browser, step: str) -> None:
    """A screenshot of what is on screen, named like browser.shot."""
    path = SCREENSHOTS / f"{browser.test_name}-{len(browser.shots) + 1:02d}-{step}.png"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    browser.page.screenshot(path=str(path))
    browser.shots.append(path)


def seed_crm(account) -> None:
    start = datetime.now(UTC) - timedelta(minutes=10)
    events = [IncomingEvent(message=record, message_id=f"crm-{i}", type="",
                            event_at=start + timedelta(minutes=i))
              for i, record in enumerate(CRM_RECORDS)]
    accept(account, "crm_users", events, [], source="test", received_at=datetime.now(UTC))


def test_a_data_manager_adds_a_field_and_a_mapping_evaluates_and_publishes(browser):
    acme = make_account("Acme Travel", slug="acme")
    make_user("dana", acme, roles=["data_manager"])
    seed_crm(acme)
    email = save_field(acme, name="email", type="string", merge_operator="latest",
                       is_identifier=True, identifier_rank=1, identifier_capacity=1,
                       is_pii=True)
    save_mapping(acme, field=email, stream="crm_users", expression="email(origin.email)")
    publish(acme, note="email")
    page = browser.page

    browser.log_in("dana", PASSWORD)
    browser.goto("/schema/")
    expect(page.locator("nav.mainnav [aria-current=page]")).to_have_text("Schema")
    expect(page.get_by_test_id("draft-clean")).to_contain_text("version 1")
    browser.shot("schema-live")

    # A field.
    page.get_by_test_id("add-field").click()
    page.get_by_label("Name", exact=True).fill("loyalty_tier")
    page.get_by_label("Description").fill("Loyalty tier from the CRM")
    page.get_by_label("Type", exact=True).select_option("string")
    page.get_by_label("Merge operator").select_option("latest")
    browser.shot("field-form")
    page.get_by_test_id("save-field").click()
    expect(page.get_by_test_id("messages")).to_contain_text("Field loyalty_tier saved")
    expect(page.get_by_test_id("draft-changes")).to_have_text(
        "Draft differs from live: 1 change")

    # A mapping for it: a typo is refused with its position, Evaluate shows the values.
    page.locator("tr[data-field=loyalty_tier]").get_by_role("link", name="+ mapping").click()
    expect(page.get_by_label("Field", exact=True)).to_have_value("loyalty_tier")
    page.get_by_label("Stream").fill("crm_users")
    page.get_by_label("Expression").fill("tolower(response.loyalty_tier")
    page.get_by_test_id("evaluate").click()
    expect(page.get_by_test_id("evaluation-refused")).to_contain_text("at 1:30")
    page.get_by_test_id("save-mapping").click()
    expect(page.get_by_test_id("caret")).to_contain_text("line 1, column 30")
    assert not Mapping.objects.filter(account=acme, field__name="loyalty_tier").exists()
    browser.shot("mapping-refused")

    page.get_by_label("Expression").fill("tolower(response.loyalty_tier)")
    expect(page.get_by_test_id("caret")).to_be_hidden()  # the refusal was about the old text
    page.get_by_label("Guard").fill("exists(response.loyalty_tier)")
    page.get_by_test_id("evaluate").click()
    table = page.get_by_test_id("evaluation-table")
    expect(table).to_be_visible()
    values = page.get_by_test_id("evaluated-value")
    expect(values).to_have_count(len(CRM_RECORDS))
    expect(values.nth(0)).to_contain_text("tolower() at 1:1: expects a string, got int 3")
    expect(values.nth(1)).to_contain_text("skipped")
    expect(values.nth(2)).to_have_text("silver")
    expect(values.nth(3)).to_have_text("gold")
    expect(table).to_contain_text("mason@example.com")  # the event as received, beside it
    expect(page.get_by_test_id("evaluation-summary")).to_contain_text("2 values")
    page.get_by_test_id("evaluation-card").scroll_into_view_if_needed()
    browser.shot("mapping-evaluated")
    page.get_by_test_id("save-mapping").click()

    # The draft banner, then publish.
    banner = page.get_by_test_id("draft-banner")
    expect(banner).to_contain_text("Draft differs from live: 2 changes")
    expect(banner.get_by_test_id("diff")).to_contain_text("loyalty_tier ← crm_users")
    expect(page.locator("tr[data-field=loyalty_tier]")).to_contain_text(
        "tolower(response.loyalty_tier)")
    browser.shot("draft-banner")
    page.get_by_placeholder("What changed").fill("Loyalty tier from the CRM")
    page.get_by_test_id("publish").click()
    expect(page.get_by_test_id("messages")).to_contain_text("Published version 2")
    expect(page.get_by_test_id("draft-banner")).to_have_count(0)
    expect(page.get_by_test_id("draft-clean")).to_contain_text("version 2")
    browser.shot("published")

    live = live_version(acme)
    assert live is not None and (live.number, live.note) == (2, "Loyalty tier from the CRM")
    assert {f["name"] for f in live.snapshot["fields"]} == {"email", "loyalty_tier"}
    assert Field.objects.get(account=acme, name="loyalty_tier").description

    page.get_by_role("link", name="Published versions").click()
    expect(page.locator("tr[data-version='2']")).to_contain_text("live")
    browser.shot("versions")
    assert SchemaVersion.objects.filter(account=acme).count() == 2
    page.locator("tr[data-version='1']").get_by_role("link", name="View").click()
    expect(page.get_by_test_id("diff")).to_contain_text("removed loyalty_tier")
    browser.shot("version-1")

    # A draft broken behind the pages' back: problems inline, Publish disabled.
    Mapping.objects.filter(account=acme, field__name="loyalty_tier").update(
        expression="tolower(response.loyalty_tier")
    browser.goto("/schema/")
    expect(page.get_by_test_id("problems")).to_contain_text("at 1:30")
    expect(page.get_by_test_id("publish")).to_be_disabled()
    browser.shot("problems")

    # The admin's mapping page previews the latest events too.
    mapping = Mapping.objects.get(account=acme, field__name="email")
    browser.goto(f"/admin/profiles/mapping/{mapping.pk}/change/")
    expect(page.get_by_test_id("mapping-preview")).to_contain_text("bo@example.com")
    browser.shot("admin-mapping-preview")
