"""The audience builder and pages in headless Chromium, against the live server and the real
audiences API: a marketer builds rules by clicking (never typing JSON), sees the text form and
the estimated size while editing, problems next to their node, saves, and reads the audience's
page; the "why" page shows each condition's value and result, PII masked for her roles.

Screenshots land in test-artifacts/screenshots/ and, for review, /tmp/audui-*.png.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from playwright.sync_api import expect

from audiences import membership
from audiences.models import Audience
from tests.audiences.page_data import EMAIL, MASKED_EMAIL, build_world, person, users
from tests.conftest import PASSWORD

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


def shot(browser, name: str) -> None:
    shutil.copy(browser.shot(name), Path(f"/tmp/audui-{name}.png"))


def root_add(page, what: str) -> None:
    page.get_by_test_id("root-group").locator(
        f":scope > .group-foot [data-testid={what}]").click()


def test_a_marketer_builds_taxonomy_and_email_by_clicking(browser, account):
    world = build_world(account)
    for i in range(4):  # more cuisine readers we can email
        person(account, {"taxonomy": "cuisine", "email": f"reader{i}@example.com"},
               email=f"reader{i}@example.com")
    users(account)
    page = browser.page

    browser.log_in("mark", PASSWORD)
    browser.goto("/audiences/")
    expect(page.locator("nav.mainnav a[data-section=audiences]")).to_have_attribute(
        "aria-current", "page")
    expect(page.get_by_test_id("audiences-table")).to_contain_text("Cuisine readers")
    shot(browser, "list")

    page.get_by_test_id("new-audience").click()
    expect(page.get_by_role("heading", name="New audience")).to_be_visible()
    expect(page.get_by_test_id("estimate-note")).to_contain_text("Add a condition")
    page.get_by_test_id("audience-name").fill("Cuisine readers with email")
    expect(page.get_by_test_id("audience-slug")).to_have_value("cuisine_readers_with_email")

    # taxonomy = "cuisine": the field from the list, the value from its samples
    root_add(page, "add-condition")
    first = page.get_by_test_id("condition").nth(0)
    first.get_by_test_id("field-select").select_option("taxonomy")
    expect(first.get_by_test_id("op-select")).to_have_value("=")
    expect(first.get_by_test_id("samples")).to_contain_text("Seen on")
    first.locator("[data-testid=sample][data-value=cuisine]").click()
    expect(first.get_by_test_id("value-input")).to_have_value("cuisine")
    expect(page.get_by_test_id("rule-text")).to_have_text('FILTER taxonomy = "cuisine"')

    # EXISTS email: a PII field, whose values this marketer is not shown
    root_add(page, "add-condition")
    second = page.get_by_test_id("condition").nth(1)
    second.get_by_test_id("field-select").select_option("email")
    expect(second.get_by_test_id("samples")).to_contain_text("PII field")
    ops = second.get_by_test_id("op-select").locator("option").all_inner_texts()
    assert "has any of" not in ops and "=" in ops  # text operators only, and of those none
    assert not {"between", "like", "contains", "≥"} & set(ops)  # that spells a masked value out
    second.get_by_test_id("op-select").select_option("exists")
    expect(second.get_by_test_id("value-input")).to_have_count(0)

    expect(page.get_by_test_id("rule-text")).to_have_text(
        'FILTER AND(taxonomy = "cuisine", EXISTS email)')
    expect(page.get_by_test_id("estimate")).to_have_text("5")
    expect(page.get_by_test_id("estimate-note")).to_have_text("profiles match now")
    shot(browser, "builder-simple")

    page.get_by_test_id("save").click()
    page.wait_for_url("**/audiences/cuisine_readers_with_email/")
    expect(page.get_by_test_id("audience-title")).to_contain_text("Cuisine readers with email")
    expect(page.get_by_test_id("rule-text")).to_have_text(
        'FILTER AND(taxonomy = "cuisine", EXISTS email)')
    saved = Audience.objects.get(account=account, slug="cuisine_readers_with_email")
    assert saved.rule == {"and": [{"field": "taxonomy", "op": "=", "value": "cuisine"},
                                  {"field": "email", "op": "exists"}]}
    assert saved.created_by.username == "mark"
    if saved.status == Audience.Status.COMPUTING:
        expect(page.get_by_test_id("status")).to_contain_text("Computing")
        shot(browser, "computing")
        membership.compute_audience(saved.pk)  # what the background worker runs
    # the page follows the computation through the size API and reloads when it is done
    expect(page.get_by_test_id("audience-size")).to_have_text("5", timeout=20_000)
    expect(page.get_by_test_id("status")).to_have_text("Ready")
    members = page.get_by_test_id("sample-members")
    expect(members.locator("tr.row")).to_have_count(5)
    expect(members).to_contain_text(MASKED_EMAIL)
    assert EMAIL not in page.content()
    shot(browser, "audience-page")
    assert world.audiences["cuisine"].slug == "cuisine"


def test_nested_groups_an_exclude_problems_and_the_text_form(browser, account):
    build_world(account)
    users(account)
    page = browser.page
    browser.log_in("mark", PASSWORD)
    browser.goto("/audiences/new/")
    page.get_by_test_id("audience-name").fill("New cooks")

    # AND( OR(taxonomy = "cuisine", loyalty_tier = "Gold"), NOT INCLUDE known_cooks )
    root_add(page, "add-group")
    nested = page.get_by_test_id("group").nth(0)
    expect(nested.get_by_test_id("mode-or")).to_have_attribute("aria-pressed", "true")
    one = nested.get_by_test_id("condition").nth(0)
    one.get_by_test_id("field-select").select_option("taxonomy")
    one.get_by_test_id("value-input").fill("cuisine")
    nested.locator(":scope > .group-foot [data-testid=add-condition]").click()
    two = nested.get_by_test_id("condition").nth(1)
    two.get_by_test_id("field-select").select_option("loyalty_tier")
    two.locator("[data-testid=sample][data-value=Gold]").click()

    root_add(page, "add-exclude")
    exclude = page.get_by_test_id("condition").nth(2)
    expect(exclude.get_by_test_id("audience-op")).to_have_value("exclude")
    # no audience chosen yet: the problem shows on that node, with its path
    problem = exclude.get_by_test_id("problem")
    expect(problem).to_have_attribute("data-path", "and[1]")
    expect(page.get_by_test_id("estimate-note")).to_contain_text("1 problem")
    shot(browser, "builder-problem")

    exclude.get_by_test_id("audience-select").select_option("known_cooks")
    expect(problem).to_have_count(0)
    expect(page.get_by_test_id("rule-text")).to_have_text(
        'FILTER AND(OR(taxonomy = "cuisine", loyalty_tier = "Gold"), NOT INCLUDE known_cooks)')
    # cook is a known cook (excluded); the anonymous "Cuisine" reader stays
    expect(page.get_by_test_id("estimate")).to_have_text("1")
    shot(browser, "builder-nested")

    # the same rule with the nested group negated, then back
    nested.locator(":scope > .group-head [data-testid=not-toggle]").click()
    expect(page.get_by_test_id("rule-text")).to_contain_text("AND(NOT OR(")
    page.get_by_test_id("group").nth(0).locator(
        ":scope > .group-head [data-testid=not-toggle]").click()

    # a syntax error in the text form says where; a good text rebuilds the tree
    page.get_by_test_id("edit-text").click()
    page.get_by_test_id("text-input").fill('FILTER AND(taxonomy = "cuisine",')
    page.get_by_test_id("apply-text").click()
    expect(page.locator("#text-problems [data-testid=problem]")).to_contain_text("line 1")
    page.get_by_test_id("text-input").fill(
        'FILTER AND(OR(taxonomy = "cuisine", loyalty_tier = "Gold"), '
        'preferred_activities INTERSECTS ("Parasailing", "Hiking"), NOT INCLUDE known_cooks)')
    page.get_by_test_id("apply-text").click()
    expect(page.get_by_test_id("condition")).to_have_count(4)
    chips = page.get_by_test_id("condition").nth(2).locator(".chip-item")
    expect(chips).to_have_count(2)
    expect(page.get_by_test_id("estimate")).to_have_text("0")
    page.get_by_test_id("condition").nth(2).get_by_test_id("remove").click()
    expect(page.get_by_test_id("estimate")).to_have_text("1")
    shot(browser, "builder-after-text")

    page.get_by_test_id("save").click()
    page.wait_for_url("**/audiences/new_cooks/")
    expect(page.get_by_test_id("rule-text")).to_have_text(
        'FILTER AND(OR(taxonomy = "cuisine", loyalty_tier = "Gold"), NOT INCLUDE known_cooks)')

    # editing loads the saved rule back into the tree
    page.get_by_test_id("edit-audience").click()
    expect(page.get_by_test_id("condition")).to_have_count(3)
    expect(page.get_by_test_id("audience-slug")).to_have_attribute("readonly", "")
    expect(page.get_by_test_id("estimate")).to_have_text("1")
    shot(browser, "builder-edit")


def test_why_in_and_the_profile_link(browser, account):
    world = build_world(account)
    users(account)
    cook = world.profiles["cook"]
    page = browser.page
    browser.log_in("mark", PASSWORD)
    browser.goto("/audiences/known_cooks/")
    shot(browser, "known-cooks")
    page.locator("#why-q").fill(str(cook.pk))
    page.get_by_role("button", name="Check").click()
    expect(page.get_by_test_id("verdict")).to_contain_text("is in")
    tree = page.get_by_test_id("why-tree")
    expect(tree.locator("[data-path='and[1]']")).to_have_attribute("data-result", "true")
    expect(tree.locator("[data-path='and[1]'] [data-testid=why-value]")).to_have_text(
        MASKED_EMAIL)
    assert EMAIL not in page.content()
    shot(browser, "why-in")

    page.get_by_test_id("why-q").fill("paul.nocook@example.com")
    page.get_by_role("button", name="Check").click()
    expect(page.get_by_test_id("verdict")).to_contain_text("is not in")
    shot(browser, "why-not-in")

    # an admin comes from the profile page
    page.context.clear_cookies()
    browser.log_in("ada", PASSWORD)
    browser.goto(f"/profiles/{cook.pk}/")
    page.get_by_test_id("profile-audiences-link").click()
    expect(page.get_by_test_id("profile-audiences")).to_contain_text("Known cooks")
    shot(browser, "profile-audiences")


def new_condition(page, index: int, kind: str):
    """Add a condition to the root group and make it of this kind (the row is redrawn)."""
    root_add(page, "add-condition")
    page.get_by_test_id("condition").nth(index).get_by_test_id("kind-select").select_option(kind)
    return page.get_by_test_id("condition").nth(index)


def add_attribute(page, index: int, name: str):
    row = new_condition(page, index, "attribute")
    row.get_by_test_id("attribute-select").select_option(name)
    row.get_by_test_id("op-select").select_option(">=")
    return row


def test_events_attributes_consent_and_lists(browser, account):
    world = build_world(account)
    users(account)
    page = browser.page
    browser.log_in("mark", PASSWORD)
    browser.goto("/audiences/new/")
    page.get_by_test_id("audience-name").fill("Warm carts")

    # at least one added_to_cart with price > 10 in the last 7 days
    event = new_condition(page, 0, "event")
    event.get_by_test_id("event-name").fill("added_to_cart")
    event.get_by_test_id("within-days").fill("7")
    event.get_by_test_id("add-property").click()
    prop = page.get_by_test_id("property-condition").nth(0)
    prop.get_by_test_id("property-name").fill("price")
    prop.get_by_test_id("property-name").press("Tab")  # known property: typed as a number
    prop = page.get_by_test_id("property-condition").nth(0)
    expect(prop.locator(".cond-type")).to_have_value("number")
    prop.get_by_test_id("op-select").select_option(">")
    prop.get_by_test_id("value-input").fill("10")

    # a calculated attribute, a consent, and a list of values from the samples
    add_attribute(page, 1, "cart_value_7d").get_by_test_id("value-input").fill("10")
    new_condition(page, 2, "consent").get_by_test_id("consent-purpose").fill("email")
    root_add(page, "add-condition")
    listed = page.get_by_test_id("condition").nth(3)
    listed.get_by_test_id("field-select").select_option("taxonomy")
    listed.get_by_test_id("op-select").select_option("in")
    listed.locator("[data-testid=sample][data-value=cuisine]").click()
    listed.locator("[data-testid=sample][data-value=travel]").click()
    expect(listed.locator(".chip-item")).to_have_count(2)

    # a date: relative helpers fill the value (checked, then removed again)
    dated = add_attribute(page, 4, "last_cart")
    dated.get_by_test_id("relative-date").select_option("now-30d")
    expect(dated.get_by_test_id("value-input")).to_have_value("now-30d")
    expect(page.get_by_test_id("rule-text")).to_contain_text('@last_cart >= "now-30d"')
    shot(browser, "builder-date")
    dated.get_by_test_id("remove").click()

    expect(page.get_by_test_id("rule-text")).to_contain_text("added_to_cart")
    expect(page.get_by_test_id("rule-text")).to_contain_text(
        'CONSENT email, taxonomy IN ("cuisine", "travel"))')
    expect(page.get_by_test_id("estimate")).to_have_text("1")
    shot(browser, "builder-kinds")

    page.get_by_test_id("save").click()
    page.wait_for_url("**/audiences/warm_carts/")
    saved = Audience.objects.get(account=account, slug="warm_carts")
    assert saved.rule == {"and": [
        {"event": "added_to_cart", "within_days": 7,
         "where": [{"property": "price", "op": ">", "type": "number", "value": 10}]},
        {"attribute": "cart_value_7d", "op": ">=", "value": 10},
        {"consent": "email"},
        {"field": "taxonomy", "op": "in", "value": ["cuisine", "travel"]},
    ]}
    expect(page.get_by_test_id("rule-text")).to_contain_text("@cart_value_7d >= 10")
    browser.goto(f"/audiences/warm_carts/why/?q={world.profiles['cook'].pk}")
    expect(page.get_by_test_id("verdict")).to_contain_text("is in")
    expect(page.get_by_test_id("why-tree")).to_contain_text("1 matching event")
    shot(browser, "why-kinds")
