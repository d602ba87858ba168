"""The schema pages (/schema/): fields with their mappings, route rules, the draft banner with
Publish and the diff, problems inline, forms whose refusals show the reason and position and
change nothing, the Evaluate dry run, versions and revert; who may open them; other accounts'
objects are not found; the admin registrations with their preview."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from html import unescape
from typing import Any

import pytest
from django.test import Client

from cdp_site.models import Account
from profiles.collection.messages import IncomingEvent
from profiles.collection.store import accept
from profiles.models import Field, Mapping, RouteRule, SchemaVersion
from profiles.processing.pipeline import process_pending
from profiles.schema.compiled import live_schema
from profiles.schema.drafts import save_field, save_mapping, save_route_rule
from profiles.schema.lytics import install_lytics_schema
from profiles.schema.versions import live_version, publish
from tests.conftest import make_user

pytestmark = pytest.mark.django_db
HX = {"HTTP_HX_REQUEST": "true"}


def signed_in(account: Account, *roles: str, name: str = "") -> Client:
    user = make_user(name or "_".join(roles) or "nobody", account, roles)
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def manager(account: Account) -> Client:
    return signed_in(account, "data_manager")


@pytest.fixture
def tier(account: Account) -> Field:
    return save_field(account, name="tier", type="string", merge_operator="latest")


_ids = iter(range(1, 10**9))


def seed(account: Account, stream: str, *messages: dict[str, Any]) -> None:
    """Raw events stored through collect.accept, the last one newest."""
    start = datetime.now(UTC) - timedelta(minutes=5)
    events = [IncomingEvent(message=dict(m), message_id=f"page-{next(_ids)}", type="track",
                            event=str(m.get("event", "")), event_at=start + timedelta(seconds=i))
              for i, m in enumerate(messages)]
    accept(account, stream, events, [], source="test", received_at=datetime.now(UTC))


def state(account: Account) -> tuple[Any, ...]:
    return (
        list(Field.objects.for_account(account).order_by("pk").values()),
        list(Mapping.objects.for_account(account).order_by("pk").values()),
        list(RouteRule.objects.for_account(account).order_by("pk").values()),
        list(SchemaVersion.objects.for_account(account).order_by("pk").values()),
    )


@contextmanager
def nothing_changes(account: Account) -> Iterator[None]:
    before = state(account)
    yield
    assert state(account) == before, "a refused request changed the schema"


def text(response: Any) -> str:
    """The page's text without tags, spaces collapsed."""
    html = response.content.decode()
    html = re.sub(r"<(script|style)\b.*?</\1>", " ", html, flags=re.S)
    return unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)))


def _lytics(account: Account) -> dict[str, Any]:
    """The Lytics use-case schema published, plus a route rule and a draft change."""
    install_lytics_schema(account)
    rule = save_route_rule(account, input_stream="default",
                           expression='contains(`_url`, "localhost")',
                           output_stream="app_divert", name="Local testing")
    field = Field.objects.get(account=account, name="taxonomy")
    return {"field": field.pk, "mapping": Mapping.objects.filter(field=field).first().pk,
            "rule": rule.pk, "version": 1}


PAGES = [
    "/schema/",
    "/schema/fields/new/",
    "/schema/fields/{field}/",
    "/schema/mappings/new/",
    "/schema/mappings/new/?field=taxonomy",
    "/schema/mappings/{mapping}/",
    "/schema/route-rules/new/",
    "/schema/route-rules/{rule}/",
    "/schema/versions/",
    "/schema/versions/{version}/",
]


@pytest.mark.parametrize("path", PAGES)
def test_each_page_renders_for_a_data_manager(account: Account, manager: Client,
                                              path: str) -> None:
    ids = _lytics(account)
    response = manager.get(path.format(**ids))
    assert response.status_code == 200, response.content
    assert 'aria-current="page">Schema</a>' in response.content.decode()


POSTS = [
    ("/schema/publish/", {}),
    ("/schema/lytics/", {}),
    ("/schema/fields/new/", {"name": "x", "type": "string", "merge_operator": "latest"}),
    ("/schema/fields/{field}/delete/", {}),
    ("/schema/mappings/new/", {"field": "taxonomy", "stream": "web", "expression": "x"}),
    ("/schema/mappings/{mapping}/", {"field": "taxonomy", "stream": "web", "expression": "x"}),
    ("/schema/mappings/{mapping}/delete/", {}),
    ("/schema/mappings/evaluate/", {"stream": "web", "expression": "x"}),
    ("/schema/route-rules/new/", {"input_stream": "a", "expression": "true",
                                  "output_stream": "b", "priority": 0}),
    ("/schema/route-rules/{rule}/delete/", {}),
    ("/schema/versions/{version}/revert/", {}),
    ("/schema/rebuild/", {}),
]


@pytest.mark.parametrize("path", PAGES)
def test_a_marketer_is_refused_every_page(account: Account, path: str) -> None:
    ids = _lytics(account)
    response = signed_in(account, "marketer").get(path.format(**ids))
    assert response.status_code == 403


@pytest.mark.parametrize(("path", "data"), POSTS, ids=[p for p, _d in POSTS])
def test_a_marketer_may_change_nothing(account: Account, path: str, data: dict[str, Any]
                                       ) -> None:
    ids = _lytics(account)
    with nothing_changes(account):
        response = signed_in(account, "marketer").post(path.format(**ids), data)
    assert response.status_code == 403


def test_visitors_sign_in_first(account: Account) -> None:
    response = Client().get("/schema/")
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


def test_the_schema_is_in_the_navigation_of_those_who_may_see_it(account: Account,
                                                                 manager: Client) -> None:
    assert 'data-section="schema"' in manager.get("/streams/").content.decode()
    searcher = signed_in(account, "user_search")
    page = searcher.get("/profiles/").content.decode()
    assert 'data-section="profiles"' in page
    assert 'data-section="schema"' not in page


# --------------------------------------------------------------------------- the overview


def test_the_overview_lists_fields_mappings_and_route_rules(account: Account,
                                                            manager: Client) -> None:
    _lytics(account)
    page = text(manager.get("/schema/"))

    assert "rank 1 · cap 1" in page  # email
    assert "rank 2 · cap 50" in page  # _uid
    assert "PII" in page
    assert "response.preferred_activities" in page
    assert "email(origin.email)" in page
    assert 'contains(`_url`, "localhost")' in page
    assert "app_divert" in page


def test_the_banner_says_how_the_draft_differs_and_offers_publish(account: Account,
                                                                  manager: Client) -> None:
    _lytics(account)  # one route rule added after the publish
    save_field(account, name="score", type="number", merge_operator="max")

    response = manager.get("/schema/")
    page = text(response)

    assert "Draft differs from live: 2 changes" in page
    assert 'data-testid="publish"' in response.content.decode()
    assert "added score" in page
    assert "Processing uses version 1 until you publish." in page


def test_publishing_from_the_page_makes_the_next_version(account: Account, manager: Client,
                                                          tier: Field) -> None:
    assert "Nothing published yet: the draft has 1 change" in text(manager.get("/schema/"))

    response = manager.post("/schema/publish/", {"note": "first"}, follow=True)

    version = SchemaVersion.objects.get(account=account)
    assert (version.number, version.note, version.published_by.username) == (
        1, "first", "data_manager")
    page = text(response)
    assert "Published version 1" in page
    assert "The draft is the live schema (version 1)" in page
    assert live_schema(account).version_id == version.pk


def test_problems_show_inline_and_publishing_is_refused(account: Account, manager: Client,
                                                        tier: Field) -> None:
    mapping = save_mapping(account, field=tier, stream="web", expression="tier")
    Mapping.objects.filter(pk=mapping.pk).update(expression="tolower(tier")  # behind the form

    response = manager.get("/schema/")
    page = text(response)
    assert f"mapping #{mapping.pk}" in page
    assert "unexpected end of expression at 1:13" in page
    assert 'data-testid="inline-problem"' in response.content.decode()
    assert re.search(r'data-testid="publish"[^>]*disabled', response.content.decode())

    with nothing_changes(account):
        refused = manager.post("/schema/publish/", {}, follow=True)
    assert "Not published: the draft has 1 problem" in text(refused)


def test_an_empty_schema_offers_the_lytics_use_cases(account: Account,
                                                      manager: Client) -> None:
    assert 'data-testid="install-lytics"' in manager.get("/schema/").content.decode()

    manager.post("/schema/lytics/")

    assert set(Field.objects.filter(account=account).values_list("name", flat=True)) == {
        "email", "user_id", "_uid", "taxonomy", "loyalty_tier", "preferred_activities"}
    assert not SchemaVersion.objects.filter(account=account).exists()  # to review first


# --------------------------------------------------------------------------- forms


def test_a_data_manager_adds_a_field(account: Account, manager: Client) -> None:
    response = manager.post("/schema/fields/new/", {
        "name": "email", "type": "string", "merge_operator": "latest", "is_identifier": "on",
        "identifier_rank": "1", "identifier_capacity": "1", "is_pii": "on"})

    assert response.status_code == 302
    assert response["Location"] == "/schema/#field-email"
    field = Field.objects.get(account=account, name="email")
    assert (field.is_identifier, field.identifier_rank, field.is_pii) == (True, 1, True)


def test_a_field_the_schema_refuses_is_shown_with_the_reason(account: Account,
                                                             manager: Client) -> None:
    with nothing_changes(account):
        response = manager.post("/schema/fields/new/", {
            "name": "visits", "type": "string", "merge_operator": "sum"})
    assert response.status_code == 400
    assert "The sum operator does not work on string fields" in text(response)


def test_editing_a_field_keeps_what_is_not_changed(account: Account, manager: Client,
                                                   tier: Field) -> None:
    form = manager.get(f"/schema/fields/{tier.pk}/").content.decode()
    assert 'value="tier"' in form
    manager.post(f"/schema/fields/{tier.pk}/", {"name": "tier", "type": "string",
                                                "merge_operator": "latest", "keep_days": "30"})
    tier.refresh_from_db()
    assert tier.keep_days == 30


def test_a_mapping_with_a_syntax_error_shows_where(account: Account, manager: Client,
                                                   tier: Field) -> None:
    with nothing_changes(account):
        response = manager.post("/schema/mappings/new/", {
            "field": "tier", "stream": "web", "expression": "tolower(tier"})

    assert response.status_code == 400
    page = text(response)
    assert "unexpected end of expression at 1:13" in page
    assert "line 1, column 13" in page
    caret = re.search(r'<pre class="caret"[^>]*>(.*?)</pre>', response.content.decode(), re.S)
    assert caret is not None
    assert caret.group(1).split("\n")[1].index("^") == 12


def test_a_mapping_with_an_unknown_function_shows_where(account: Account, manager: Client,
                                                        tier: Field) -> None:
    with nothing_changes(account):
        response = manager.post("/schema/mappings/new/", {
            "field": "tier", "stream": "web", "expression": "tier",
            "guard": "exists(tier) AND foo(x)"})
    assert response.status_code == 400
    assert "unknown function 'foo' at 1:18" in text(response)


def test_a_mapping_to_a_field_of_another_type_is_refused_on_the_page(
        account: Account, manager: Client) -> None:
    save_field(account, name="visits", type="int", merge_operator="sum")
    with nothing_changes(account):
        response = manager.post("/schema/mappings/new/", {
            "field": "visits", "stream": "web", "expression": "email(address)"})
    assert response.status_code == 400
    assert "does not fit visits (int); convert it with toint()" in text(response)


def test_a_mapping_is_saved_and_changed(account: Account, manager: Client, tier: Field) -> None:
    response = manager.post("/schema/mappings/new/", {
        "field": "tier", "stream": "crm_users", "expression": "response.loyalty_tier"})
    assert response.status_code == 302
    mapping = Mapping.objects.get(account=account)
    assert manager.get("/schema/mappings/new/?field=tier").status_code == 200

    manager.post(f"/schema/mappings/{mapping.pk}/", {
        "field": "tier", "stream": "crm_users", "expression": "tolower(response.loyalty_tier)",
        "guard": "exists(response.loyalty_tier)"})
    mapping.refresh_from_db()
    assert mapping.guard == "exists(response.loyalty_tier)"

    assert manager.post(f"/schema/mappings/{mapping.pk}/delete/").status_code == 302
    assert not Mapping.objects.exists()


def test_a_route_rule_loop_is_refused_on_the_page(account: Account, manager: Client) -> None:
    save_route_rule(account, input_stream="a", expression="true", output_stream="b")
    with nothing_changes(account):
        response = manager.post("/schema/route-rules/new/", {
            "input_stream": "b", "expression": "true", "output_stream": "a", "priority": "0",
            "active": "on"})
    assert response.status_code == 400
    assert "This rule would make route rules loop: a → b → a." in text(response)


def test_deleting_a_field_from_its_page(account: Account, manager: Client, tier: Field) -> None:
    save_mapping(account, field=tier, stream="web", expression="tier")
    response = manager.post(f"/schema/fields/{tier.pk}/delete/", follow=True)
    assert "Field tier and its mappings removed from the draft." in text(response)
    assert not Field.objects.filter(account=account).exists()


# --------------------------------------------------------------------------- evaluate


def test_evaluate_shows_the_values_for_the_latest_events(account: Account, manager: Client,
                                                         tier: Field) -> None:
    seed(account, "crm_users", {"tier": "Gold"}, {"tier": 5}, {"other": 1}, {"tier": "SILVER"})

    response = manager.post("/schema/mappings/evaluate/", {
        "field": "tier", "stream": "crm_users", "expression": "tolower(tier)",
        "guard": "exists(tier)"}, **HX)

    assert response.status_code == 200
    html = response.content.decode()
    assert "<html" not in html  # the fragment only
    values = re.findall(r'data-testid="evaluated-value">(.*?)</td>', html, re.S)
    shown = [re.sub(r"<[^>]+>", "", v).strip() for v in values]
    assert shown[0] == "silver" and shown[3] == "gold"
    assert shown[1] == "skipped: the guard is not true"
    assert shown[2].startswith("error tolower() at 1:1")
    assert "2 values, 1 skipped by the guard, 1 error" in text(response)


def test_evaluate_answers_a_bad_expression_with_its_position(account: Account,
                                                             manager: Client) -> None:
    response = manager.post("/schema/mappings/evaluate/", {
        "stream": "web", "expression": "trim(foo(x))"}, **HX)
    assert response.status_code == 200
    assert "unknown function 'foo' at 1:6" in text(response)
    empty = manager.post("/schema/mappings/evaluate/", {"stream": "web", "expression": "x"},
                         **HX)
    assert "No raw events in web yet" in text(empty)


# --------------------------------------------------------------------------- rebuild


def test_publishing_with_a_rebuild_shows_its_progress(account: Account, manager: Client,
                                                      tier: Field) -> None:
    save_mapping(account, field=tier, stream="web", expression="tier")
    seed(account, "web", {"tier": "a"}, {"tier": "b"}, {"tier": "c"})

    response = manager.post("/schema/publish/", {"rebuild": "on"}, follow=True)

    page = text(response)
    assert "profiles are being rebuilt" in page
    assert "Rebuilding profiles with version 1: 0 of 3 events (0.0 %)" in page
    assert 'hx-trigger="every 2s"' in response.content.decode()
    process_pending(account_id=account.pk)
    panel = manager.get("/schema/rebuild/", **HX)
    assert "<html" not in panel.content.decode()
    assert "Profiles rebuilt with version 1: 3 raw events processed again" in text(panel)
    assert "every 2s" not in panel.content.decode()  # polling stops


def test_a_rebuild_from_the_page_needs_a_published_version(account: Account, manager: Client,
                                                           tier: Field) -> None:
    response = manager.post("/schema/rebuild/", follow=True)
    assert "Publish a schema version before rebuilding" in text(response)
    assert 'data-testid="start-rebuild"' not in response.content.decode()
    publish(account)
    assert 'data-testid="start-rebuild"' in manager.get("/schema/").content.decode()
    manager.post("/schema/rebuild/")
    # no raw events: nothing to wait for
    assert "Profiles rebuilt with version 1: 0 raw events" in text(manager.get("/schema/"))


# --------------------------------------------------------------------------- versions


def test_versions_list_and_revert(account: Account, manager: Client, tier: Field) -> None:
    publish(account, note="first")
    save_field(account, name="score", type="number", merge_operator="max")
    publish(account, note="second")

    page = text(manager.get("/schema/versions/"))
    assert "v2 live" in page and "first" in page
    detail = text(manager.get("/schema/versions/1/"))
    assert "What reverting would change" in detail and "removed score" in detail

    response = manager.post("/schema/versions/1/revert/", follow=True)

    assert "Version 1 published again as version 3" in text(response)
    live = live_version(account)
    assert (live.number, live.reverted_from) == (3, 1)
    assert not Field.objects.filter(account=account, name="score").exists()


# --------------------------------------------------------------------------- other accounts


OTHER_PATHS = [
    ("get", "/schema/fields/{field}/"),
    ("post", "/schema/fields/{field}/"),
    ("post", "/schema/fields/{field}/delete/"),
    ("get", "/schema/mappings/{mapping}/"),
    ("post", "/schema/mappings/{mapping}/delete/"),
    ("get", "/schema/route-rules/{rule}/"),
    ("post", "/schema/route-rules/{rule}/delete/"),
    ("get", "/schema/versions/{version}/"),
    ("post", "/schema/versions/{version}/revert/"),
]


@pytest.mark.parametrize(("method", "path"), OTHER_PATHS)
def test_another_accounts_schema_is_not_found(account: Account, other_account: Account,
                                              manager: Client, method: str, path: str) -> None:
    theirs = _lytics(other_account)
    with nothing_changes(other_account):
        response = getattr(manager, method)(path.format(**theirs))
    assert response.status_code == 404


def test_the_overview_shows_only_the_accounts_own_schema(account: Account,
                                                         other_account: Account,
                                                         manager: Client) -> None:
    _lytics(other_account)
    page = text(manager.get("/schema/"))
    assert "No fields yet" in page
    assert "app_divert</span>" not in page


# --------------------------------------------------------------------------- the admin


def test_the_admin_lists_the_schema_for_data_managers_only(account: Account,
                                                           manager: Client) -> None:
    _lytics(account)
    index = manager.get("/admin/").content.decode()
    for model in ("field", "mapping", "routerule", "schemaversion"):
        assert f"/admin/profiles/{model}/" in index, model
        assert manager.get(f"/admin/profiles/{model}/").status_code == 200, model
    marketer = signed_in(account, "marketer")
    assert "/admin/profiles/field/" not in marketer.get("/admin/").content.decode()
    assert marketer.get("/admin/profiles/field/").status_code == 403


def test_the_admin_saves_a_field_through_the_schema_service(account: Account,
                                                            manager: Client) -> None:
    form = {"name": "email", "description": "", "type": "string", "merge_operator": "latest",
            "capacity": "", "keep_days": "", "is_identifier": "on", "identifier_rank": "1",
            "identifier_capacity": "", "is_pii": "on"}
    response = manager.post("/admin/profiles/field/add/", form)

    assert response.status_code == 302, text(response)
    field = Field.objects.get(account=account, name="email")
    assert (field.identifier_rank, field.identifier_capacity) == (1, 1)  # the service's default

    with nothing_changes(account):
        refused = manager.post("/admin/profiles/field/add/", {
            **form, "name": "visits", "merge_operator": "sum", "is_identifier": ""})
    assert refused.status_code == 200
    assert "The sum operator does not work on string fields" in text(refused)


def test_the_admin_refuses_a_bad_mapping_with_its_position(account: Account,
                                                          other_account: Account,
                                                          manager: Client, tier: Field) -> None:
    theirs = save_field(other_account, name="secret", type="string",
                        merge_operator="latest")
    page = manager.get("/admin/profiles/mapping/add/").content.decode()
    assert f'value="{tier.pk}"' in page and f'value="{theirs.pk}"' not in page

    with nothing_changes(account):
        response = manager.post("/admin/profiles/mapping/add/", {
            "field": tier.pk, "stream": "web", "expression": "tolower(foo(tier))", "guard": ""})
    assert response.status_code == 200
    assert "unknown function 'foo' at 1:9" in text(response)
    with nothing_changes(account):
        manager.post("/admin/profiles/mapping/add/", {
            "field": theirs.pk, "stream": "web", "expression": "x", "guard": ""})

    saved = manager.post("/admin/profiles/mapping/add/", {
        "field": tier.pk, "stream": "web", "expression": "tolower(tier)", "guard": ""})
    assert saved.status_code == 302
    assert Mapping.objects.get(account=account).expression == "tolower(tier)"


def test_the_admin_mapping_page_previews_the_latest_events(account: Account, manager: Client,
                                                           tier: Field) -> None:
    mapping = save_mapping(account, field=tier, stream="crm_users",
                           expression="tolower(tier)")
    seed(account, "crm_users", *[{"tier": f"Tier{i}"} for i in range(12)], {"tier": 5})

    response = manager.get(f"/admin/profiles/mapping/{mapping.pk}/change/")

    html = response.content.decode()
    preview = re.search(r"data-testid='mapping-preview'.*?</table>", html, re.S)
    assert preview is not None
    rows = re.findall(r"<tr><td>", preview.group(0))
    assert len(rows) == 10  # the latest ten
    assert "tolower() at 1:1: expects a string, got int 5" in unescape(preview.group(0))
    assert "<code>tier11</code>" in preview.group(0)


def test_the_admin_shows_versions_read_only_and_publishes_and_reverts(
        account: Account, manager: Client, tier: Field) -> None:
    publish(account, note="first")
    save_field(account, name="score", type="number", merge_operator="max")

    publish_page = manager.get("/admin/profiles/schemaversion/publish/")
    assert "1 change to publish" in text(publish_page)
    response = manager.post("/admin/profiles/schemaversion/publish/", {"note": "second"})
    assert response.status_code == 302
    assert live_version(account).number == 2

    first = SchemaVersion.objects.get(account=account, number=1)
    change = manager.get(f"/admin/profiles/schemaversion/{first.pk}/change/")
    assert change.status_code == 200
    assert "&quot;name&quot;: &quot;tier&quot;" in change.content.decode()
    assert 'name="_save"' not in change.content.decode()  # read-only
    assert manager.get("/admin/profiles/schemaversion/add/").status_code == 403

    manager.post("/admin/profiles/schemaversion/", {
        "action": "revert_to_version", "_selected_action": [first.pk]})
    live = live_version(account)
    assert (live.number, live.reverted_from) == (3, 1)


def test_the_admin_deletes_through_the_service_and_hides_other_accounts(
        account: Account, other_account: Account, manager: Client, tier: Field) -> None:
    theirs = save_field(other_account, name="secret", type="string",
                        merge_operator="latest")
    assert "secret" not in text(manager.get("/admin/profiles/field/"))
    with nothing_changes(other_account):
        response = manager.get(f"/admin/profiles/field/{theirs.pk}/change/")
        assert response.status_code == 302  # the admin's "does not exist" redirect
        manager.post(f"/admin/profiles/field/{theirs.pk}/delete/", {"post": "yes"})

    manager.post(f"/admin/profiles/field/{tier.pk}/delete/", {"post": "yes"})
    assert not Field.objects.filter(account=account).exists()
