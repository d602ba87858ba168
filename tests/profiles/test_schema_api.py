"""The schema API (/api/v1/schema/…): draft edits through the services, each refusal a 400
with its code, message and (for expressions) position, and nothing changed; validate, diff,
publish, versions, revert, the evaluate dry run; roles (Data Managers yes, Marketers 403) and
other accounts' objects (404)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from rest_framework.test import APIClient

from cdp_site.models import Account, Permission, Role
from profiles.collection.messages import IncomingEvent
from profiles.collection.store import accept
from profiles.models import Field, Mapping, Profile, RouteRule, SchemaVersion
from profiles.processing.pipeline import process_pending
from profiles.schema.compiled import live_schema
from profiles.schema.drafts import save_field, save_mapping, save_route_rule
from profiles.schema.versions import live_version, publish
from tests.conftest import make_token, token_client

API = "/api/v1/schema"
pytestmark = pytest.mark.django_db


# --------------------------------------------------------------------------- builders


@pytest.fixture
def manager(client_for_roles: Callable[..., APIClient]) -> APIClient:
    return client_for_roles("data_manager")


@pytest.fixture
def marketer(client_for_roles: Callable[..., APIClient]) -> APIClient:
    return client_for_roles("marketer")


@pytest.fixture
def tier(account: Account) -> Field:
    return save_field(account, name="tier", type="string", merge_operator="latest")


@pytest.fixture
def visits(account: Account) -> Field:
    return save_field(account, name="visits", type="int", merge_operator="sum")


_ids = iter(range(1, 10**9))


def seed(account: Account, stream: str, *messages: dict[str, Any]) -> int:
    """Raw events stored the way every collection path stores them (collect.accept), one
    second apart, the last one newest."""
    start = datetime.now(UTC) - timedelta(minutes=5)
    events = [IncomingEvent(message=dict(m), message_id=f"seed-{next(_ids)}",
                            type=str(m.get("type", "track")), event=str(m.get("event", "")),
                            event_at=start + timedelta(seconds=i))
              for i, m in enumerate(messages)]
    return accept(account, stream, events, [], source="test",
                  received_at=datetime.now(UTC)).stored


def draft_state(account: Account) -> tuple[Any, ...]:
    """Everything an edit or publish could change: the draft (with row ids and update times)
    and the published versions."""
    rows = (
        list(Field.objects.for_account(account).order_by("pk").values()),
        list(Mapping.objects.for_account(account).order_by("pk").values()),
        list(RouteRule.objects.for_account(account).order_by("pk").values()),
        list(SchemaVersion.objects.for_account(account).order_by("pk").values()),
    )
    return tuple(rows)


@contextmanager
def nothing_changes(account: Account) -> Iterator[None]:
    before = draft_state(account)
    yield
    assert draft_state(account) == before, "a refused request changed the schema"


def refused(response: Any, code: str, status: int = 400) -> dict[str, Any]:
    assert response.status_code == status, response.content
    body = response.json()
    assert body["code"] == code, body
    assert body["message"]
    return body


def results(response: Any) -> list[dict[str, Any]]:
    assert response.status_code == 200, response.content
    body = response.json()
    return body["results"] if isinstance(body, dict) and "results" in body else body


# --------------------------------------------------------------------------- fields


def test_a_data_manager_defines_a_field(account: Account, manager: APIClient) -> None:
    response = manager.post(f"{API}/fields/", {
        "name": "email", "description": "Email", "type": "string", "merge_operator": "latest",
        "is_identifier": True, "identifier_rank": 1, "identifier_capacity": 1, "is_pii": True,
    }, format="json")

    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["name"], body["identifier_rank"], body["identifier_capacity"],
            body["is_pii"], body["mappings"]) == ("email", 1, 1, True, [])
    field = Field.objects.get(account=account, name="email")
    assert field.is_identifier and field.pk == body["id"]


def test_fields_list_with_their_mappings_and_filters(account: Account, manager: APIClient,
                                                     tier: Field, visits: Field) -> None:
    save_mapping(account, field=tier, stream="web", expression="tolower(tier)")

    rows = results(manager.get(f"{API}/fields/"))
    assert [r["name"] for r in rows] == ["tier", "visits"]
    assert rows[0]["mappings"][0]["expression"] == "tolower(tier)"
    assert [r["name"] for r in results(manager.get(f"{API}/fields/?q=vis"))] == ["visits"]
    assert results(manager.get(f"{API}/fields/?identifier=true")) == []
    assert manager.get(f"{API}/fields/{tier.pk}/").json()["type"] == "string"


def test_patch_changes_only_what_is_sent_and_put_resets_the_rest(
        account: Account, manager: APIClient) -> None:
    field = save_field(account, name="score", type="number", merge_operator="max",
                       description="Lead score", keep_days=30)

    patched = manager.patch(f"{API}/fields/{field.pk}/", {"keep_days": 90}, format="json")
    assert patched.status_code == 200, patched.content
    assert (patched.json()["keep_days"], patched.json()["description"]) == (90, "Lead score")

    put = manager.put(f"{API}/fields/{field.pk}/", {
        "name": "score", "type": "number", "merge_operator": "sum"}, format="json")
    assert put.status_code == 200, put.content
    field.refresh_from_db()
    assert (field.merge_operator, field.keep_days, field.description) == ("sum", None, "")


def test_deleting_a_field_removes_its_mappings_from_the_draft(
        account: Account, manager: APIClient, tier: Field) -> None:
    save_mapping(account, field=tier, stream="web", expression="tier")

    assert manager.delete(f"{API}/fields/{tier.pk}/").status_code == 204
    assert not Field.objects.filter(pk=tier.pk).exists()
    assert not Mapping.objects.filter(account=account).exists()


@pytest.mark.parametrize(("attrs", "code", "attr"), [
    ({"name": "1st"}, "invalid_name", "name"),
    ({"name": "ok", "type": "text"}, "invalid_type", "type"),
    ({"name": "ok", "merge_operator": "sum"}, "merge_operator_does_not_fit", "merge_operator"),
    ({"name": "ok", "capacity": 0}, "invalid_number", "capacity"),
    ({"name": "ok", "is_identifier": True, "identifier_rank": 0}, "identifier_rank",
     "identifier_rank"),
    ({"name": "ok", "is_identifier": True, "identifier_rank": 1, "identifier_capacity": 51},
     "identifier_capacity", "identifier_capacity"),
    ({"name": "ok", "type": "map[string]int", "merge_operator": "mapsum",
      "is_identifier": True, "identifier_rank": 1}, "identifier_type", "type"),
])
def test_a_field_that_cannot_work_is_refused_and_nothing_is_stored(
        account: Account, manager: APIClient, attrs: dict[str, Any], code: str, attr: str
) -> None:
    with nothing_changes(account):
        body = refused(manager.post(f"{API}/fields/", attrs, format="json"), code)
    assert body["errors"][attr][0]["code"] == code


def test_a_duplicate_field_name_is_refused(account: Account, manager: APIClient,
                                           tier: Field) -> None:
    with nothing_changes(account):
        refused(manager.post(f"{API}/fields/", {"name": "tier"}, format="json"),
                "duplicate_name")


def test_a_description_too_long_for_its_column_is_refused(account: Account,
                                                          manager: APIClient) -> None:
    with nothing_changes(account):
        body = refused(manager.post(f"{API}/fields/", {"name": "x", "description": "d" * 501},
                                    format="json"), "invalid")
    assert "description" in body["errors"]


def test_changing_a_fields_type_under_its_mappings_is_refused(
        account: Account, manager: APIClient, tier: Field) -> None:
    save_mapping(account, field=tier, stream="web", expression="tolower(tier)")

    with nothing_changes(account):
        body = refused(manager.patch(f"{API}/fields/{tier.pk}/", {"type": "int"},
                                     format="json"), "type_mismatch")
    assert body["errors"]["expression"][0]["kind"] == "mapping"
    assert Field.objects.get(pk=tier.pk).type == "string"


# --------------------------------------------------------------------------- mappings


def test_a_data_manager_maps_a_field_by_name_or_id(account: Account, manager: APIClient,
                                                  tier: Field) -> None:
    by_name = manager.post(f"{API}/mappings/", {
        "field": "tier", "stream": "crm_users", "expression": "response.loyalty_tier"},
        format="json")
    by_id = manager.post(f"{API}/mappings/", {
        "field": str(tier.pk), "stream": "web", "expression": "tolower(tier)",
        "guard": "exists(tier)"}, format="json")

    assert by_name.status_code == 201, by_name.content
    assert by_id.status_code == 201, by_id.content
    assert (by_id.json()["field"], by_id.json()["field_type"], by_id.json()["guard"]) == (
        "tier", "string", "exists(tier)")
    assert [r["stream"] for r in results(manager.get(f"{API}/mappings/"))] == [
        "crm_users", "web"]
    assert [r["id"] for r in results(manager.get(f"{API}/mappings/?stream=web"))] == [
        by_id.json()["id"]]
    assert len(results(manager.get(f"{API}/mappings/?field=tier"))) == 2


def test_a_mapping_is_changed_and_deleted(account: Account, manager: APIClient,
                                          tier: Field) -> None:
    mapping = save_mapping(account, field=tier, stream="web", expression="tier",
                           guard="exists(tier)")

    patched = manager.patch(f"{API}/mappings/{mapping.pk}/", {"expression": "toupper(tier)"},
                            format="json")
    assert patched.status_code == 200, patched.content
    mapping.refresh_from_db()
    assert (mapping.expression, mapping.guard) == ("toupper(tier)", "exists(tier)")
    assert manager.delete(f"{API}/mappings/{mapping.pk}/").status_code == 204
    assert not Mapping.objects.filter(pk=mapping.pk).exists()


def test_an_expression_with_a_syntax_error_is_refused_with_its_position(
        account: Account, manager: APIClient, tier: Field) -> None:
    with nothing_changes(account):
        body = refused(manager.post(f"{API}/mappings/", {
            "field": "tier", "stream": "web", "expression": "tolower(tier"}, format="json"),
            "invalid_expression")

    assert (body["line"], body["column"]) == (1, 13)
    [problem] = body["errors"]["expression"]
    assert (problem["code"], problem["line"], problem["column"]) == ("invalid_expression", 1, 13)
    assert "1:13" in body["message"]


def test_an_unknown_function_is_refused_with_its_position(
        account: Account, manager: APIClient, tier: Field) -> None:
    with nothing_changes(account):
        body = refused(manager.post(f"{API}/mappings/", {
            "field": "tier", "stream": "web", "expression": "trim(foo(tier))"}, format="json"),
            "invalid_expression")

    assert "unknown function 'foo' at 1:6" in body["message"]
    assert (body["line"], body["column"]) == (1, 6)


def test_a_bad_guard_is_refused_with_its_position(account: Account, manager: APIClient,
                                                  tier: Field) -> None:
    with nothing_changes(account):
        body = refused(manager.post(f"{API}/mappings/", {
            "field": "tier", "stream": "web", "expression": "tier",
            "guard": "exists(tier) AND nosuch(x)"}, format="json"), "invalid_expression")

    assert list(body["errors"]) == ["guard"]
    assert (body["line"], body["column"]) == (1, 18)


def test_a_syntax_error_in_an_edit_leaves_the_mapping_as_it_was(
        account: Account, manager: APIClient, tier: Field) -> None:
    mapping = save_mapping(account, field=tier, stream="web", expression="tier")

    with nothing_changes(account):
        body = refused(manager.patch(f"{API}/mappings/{mapping.pk}/", {"expression": "tier +"},
                                     format="json"), "invalid_expression")
    assert body["line"] == 1
    assert Mapping.objects.get(pk=mapping.pk).expression == "tier"


def test_a_mapping_to_a_field_of_another_type_is_refused(account: Account, manager: APIClient,
                                                          visits: Field) -> None:
    with nothing_changes(account):
        body = refused(manager.post(f"{API}/mappings/", {
            "field": "visits", "stream": "web", "expression": "email(address)"}, format="json"),
            "type_mismatch")
    assert "toint()" in body["message"]
    assert body["errors"]["expression"][0]["code"] == "type_mismatch"
    ok = manager.post(f"{API}/mappings/", {
        "field": "visits", "stream": "web", "expression": "toint(visits)"}, format="json")
    assert ok.status_code == 201


def test_moving_a_mapping_to_a_field_of_another_type_is_refused(
        account: Account, manager: APIClient, tier: Field, visits: Field) -> None:
    mapping = save_mapping(account, field=tier, stream="web", expression="tolower(tier)")

    with nothing_changes(account):
        refused(manager.patch(f"{API}/mappings/{mapping.pk}/", {"field": "visits"},
                              format="json"), "type_mismatch")


def test_an_empty_expression_and_a_bad_stream_name_are_refused(
        account: Account, manager: APIClient, tier: Field) -> None:
    with nothing_changes(account):
        refused(manager.post(f"{API}/mappings/", {"field": "tier", "stream": "web",
                                                 "expression": "  "}, format="json"),
                "empty_expression")
        body = refused(manager.post(f"{API}/mappings/", {"field": "tier", "stream": "a b",
                                                        "expression": "tier"}, format="json"),
                       "invalid_stream")
    assert "stream" in body["errors"]


def test_a_mapping_to_an_unknown_field_is_refused(account: Account, other_account: Account,
                                                  manager: APIClient) -> None:
    theirs = save_field(other_account, name="tier", type="string",
                        merge_operator="latest")
    with nothing_changes(account):
        refused(manager.post(f"{API}/mappings/", {"field": "nosuch", "stream": "web",
                                                 "expression": "x"}, format="json"),
                "unknown_field")
        # another account's field, by name or by id, is no field of this account
        refused(manager.post(f"{API}/mappings/", {"field": "tier", "stream": "web",
                                                 "expression": "x"}, format="json"),
                "unknown_field")
        refused(manager.post(f"{API}/mappings/", {"field": str(theirs.pk), "stream": "web",
                                                 "expression": "x"}, format="json"),
                "unknown_field")
    assert not Mapping.objects.exists()


def test_a_request_missing_what_a_mapping_needs_is_refused(account: Account,
                                                           manager: APIClient) -> None:
    with nothing_changes(account):
        body = refused(manager.post(f"{API}/mappings/", {"field": "tier"}, format="json"),
                       "invalid")
    assert {"stream", "expression"} <= set(body["errors"])


# --------------------------------------------------------------------------- route rules


def test_a_data_manager_routes_localhost_traffic_away(account: Account,
                                                      manager: APIClient) -> None:
    response = manager.post(f"{API}/route-rules/", {
        "name": "Local testing", "input_stream": "default",
        "expression": 'contains(`_url`, "localhost")', "output_stream": "app_divert",
        "priority": 10}, format="json")

    assert response.status_code == 201, response.content
    rule = RouteRule.objects.get(account=account)
    assert (rule.output_stream, rule.priority, rule.active) == ("app_divert", 10, True)
    patched = manager.patch(f"{API}/route-rules/{rule.pk}/", {"active": False}, format="json")
    assert patched.json()["active"] is False
    assert results(manager.get(f"{API}/route-rules/?stream=default"))[0]["id"] == rule.pk
    assert manager.delete(f"{API}/route-rules/{rule.pk}/").status_code == 204
    assert not RouteRule.objects.exists()


def test_a_route_rule_loop_is_refused(account: Account, manager: APIClient) -> None:
    save_route_rule(account, input_stream="a", expression="true", output_stream="b")
    save_route_rule(account, input_stream="b", expression="x = 1", output_stream="c")

    with nothing_changes(account):
        body = refused(manager.post(f"{API}/route-rules/", {
            "input_stream": "c", "expression": "true", "output_stream": "a"}, format="json"),
            "route_loop")
        assert "a → b → c → a" in body["message"]
        assert body["errors"]["output_stream"][0]["code"] == "route_loop"
        refused(manager.post(f"{API}/route-rules/", {
            "input_stream": "a", "expression": "true", "output_stream": "a"}, format="json"),
            "route_loop")
    assert RouteRule.objects.count() == 2


def test_activating_a_rule_that_closes_a_loop_is_refused(account: Account,
                                                         manager: APIClient) -> None:
    save_route_rule(account, input_stream="a", expression="true", output_stream="b")
    back = save_route_rule(account, input_stream="b", expression="true",
                           output_stream="a", active=False)

    with nothing_changes(account):
        refused(manager.patch(f"{API}/route-rules/{back.pk}/", {"active": True},
                              format="json"), "route_loop")
    assert RouteRule.objects.get(pk=back.pk).active is False


def test_a_route_rule_with_a_bad_expression_is_refused_with_its_position(
        account: Account, manager: APIClient) -> None:
    with nothing_changes(account):
        body = refused(manager.post(f"{API}/route-rules/", {
            "input_stream": "default", "expression": 'contains(`_url`, "localhost"',
            "output_stream": "app_divert"}, format="json"), "invalid_expression")
    assert body["line"] == 1 and body["column"] > 1


# --------------------------------------------------------------------------- the draft


def test_validate_lists_the_drafts_problems(account: Account, manager: APIClient,
                                            tier: Field) -> None:
    assert manager.get(f"{API}/validate/").json() == {"valid": True, "problems": []}
    mapping = save_mapping(account, field=tier, stream="web", expression="tier")
    Mapping.objects.filter(pk=mapping.pk).update(expression="tier +")  # behind the services

    body = manager.get(f"{API}/validate/").json()

    assert body["valid"] is False
    [problem] = body["problems"]
    assert (problem["code"], problem["kind"], problem["ref"], problem["line"]) == (
        "invalid_expression", "mapping", str(mapping.pk), 1)


def test_diff_counts_what_publishing_would_change(account: Account, manager: APIClient,
                                                  tier: Field) -> None:
    first = manager.get(f"{API}/diff/").json()
    assert (first["live_version"], first["has_changes"], first["changes"]) == (None, True, 1)
    assert first["fields"]["added"][0]["name"] == "tier"
    publish(account)
    assert manager.get(f"{API}/diff/").json()["changes"] == 0

    save_field(account, instance=tier, keep_days=30)
    save_field(account, name="score", type="number", merge_operator="max")
    body = manager.get(f"{API}/diff/").json()

    assert (body["live_version"], body["changes"]) == (1, 2)
    assert body["fields"]["changed"][0]["changes"] == {"keep_days": [None, 30]}


def test_publish_makes_a_version_that_processing_uses(account: Account, manager: APIClient,
                                                      tier: Field) -> None:
    save_mapping(account, field=tier, stream="web", expression="tolower(tier)")
    save_field(account, name="email", type="string", merge_operator="latest",
               is_identifier=True, identifier_rank=1, identifier_capacity=1)
    save_mapping(account, field="email", stream="web", expression="email(email)")

    response = manager.post(f"{API}/publish/", {"note": "tiers"}, format="json")

    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["number"], body["note"], body["live"]) == (1, "tiers", True)
    assert body["snapshot"]["mappings"][1] == {
        "field": "tier", "stream": "web", "expression": "tolower(tier)", "guard": ""}
    version = SchemaVersion.objects.get(account=account)
    live = live_schema(account)
    assert live is not None and live.version_id == version.pk
    seed(account, "web", {"email": "Ana@Example.com", "tier": "GOLD"})
    process_pending(account_id=account.pk)
    [profile] = Profile.objects.for_account(account).filter(merged_into__isnull=True)
    assert profile.field_values["tier"] == "gold"
    assert profile.field_values["email"] == "ana@example.com"


def test_publishing_a_draft_that_fails_validation_is_refused_and_nothing_changes(
        account: Account, manager: APIClient, tier: Field) -> None:
    mapping = save_mapping(account, field=tier, stream="web", expression="tier")
    first = publish(account)
    Mapping.objects.filter(pk=mapping.pk).update(expression="tolower(tier")  # behind the API

    with nothing_changes(account):
        body = refused(manager.post(f"{API}/publish/", {}, format="json"), "draft_invalid")

    [problem] = body["problems"]
    assert (problem["code"], problem["ref"], problem["line"], problem["column"]) == (
        "invalid_expression", str(mapping.pk), 1, 13)
    assert (body["line"], body["column"]) == (1, 13)
    assert "1 problem" in body["message"]
    assert live_version(account) == first


def test_publishing_nothing_new_is_refused(account: Account, manager: APIClient,
                                           tier: Field) -> None:
    publish(account)
    with nothing_changes(account):
        refused(manager.post(f"{API}/publish/", {}, format="json"), "no_changes")


# --------------------------------------------------------------------------- versions


def test_versions_list_newest_first_and_detail_has_the_snapshot(
        account: Account, manager: APIClient, tier: Field) -> None:
    publish(account, note="first")
    save_field(account, name="score", type="number", merge_operator="max")
    publish(account, note="second")

    rows = results(manager.get(f"{API}/versions/"))

    assert [(r["number"], r["note"], r["live"], r["fields_count"]) for r in rows] == [
        (2, "second", True, 2), (1, "first", False, 1)]
    assert "snapshot" not in rows[0]
    detail = manager.get(f"{API}/versions/1/").json()
    assert [f["name"] for f in detail["snapshot"]["fields"]] == ["tier"]
    assert detail["live"] is False
    assert manager.get(f"{API}/versions/9/").status_code == 404


def test_revert_publishes_an_earlier_version_again(account: Account, manager: APIClient,
                                                   tier: Field) -> None:
    save_mapping(account, field=tier, stream="web", expression="tier")
    publish(account)
    save_field(account, name="score", type="number", merge_operator="max")
    Mapping.objects.filter(account=account).delete()
    publish(account)

    response = manager.post(f"{API}/versions/1/revert/", {}, format="json")

    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["number"], body["reverted_from"], body["live"]) == (3, 1, True)
    assert live_version(account).number == 3
    assert list(Field.objects.filter(account=account).values_list("name", flat=True)) == [
        "tier"]
    assert Mapping.objects.get(account=account).expression == "tier"
    assert manager.get(f"{API}/diff/").json()["changes"] == 0


def test_revert_to_the_live_schema_is_refused_and_nothing_changes(
        account: Account, manager: APIClient, tier: Field) -> None:
    publish(account)
    save_field(account, name="draft_only", type="string", merge_operator="latest")

    with nothing_changes(account):
        refused(manager.post(f"{API}/versions/1/revert/", {}, format="json"), "no_changes")


def test_revert_without_publishing_restores_the_draft_only(account: Account,
                                                           manager: APIClient,
                                                           tier: Field) -> None:
    publish(account)
    save_field(account, name="score", type="number", merge_operator="max")
    publish(account)

    response = manager.post(f"{API}/versions/1/revert/", {"publish": False}, format="json")

    assert response.status_code == 200, response.content
    assert response.json()["draft_restored_from"] == 1
    assert response.json()["diff"]["changes"] == 1
    assert live_version(account).number == 2
    assert not Field.objects.filter(account=account, name="score").exists()


# --------------------------------------------------------------------------- evaluate


def test_evaluate_shows_what_a_mapping_would_give_for_the_latest_events(
        account: Account, manager: APIClient, tier: Field) -> None:
    seed(account, "crm_users", {"tier": "Gold"}, {"tier": 5}, {"other": 1},
         {"tier": "SILVER"})
    seed(account, "web", {"tier": "not this stream"})

    response = manager.post(f"{API}/evaluate/", {
        "stream": "crm_users", "expression": "tolower(tier)", "guard": "exists(tier)",
        "field": "tier"}, format="json")

    assert response.status_code == 200, response.content
    body = response.json()
    rows = [(r["value"], r["applies"], bool(r["error"])) for r in body["results"]]
    assert rows == [("silver", True, False), (None, False, False), (None, True, True),
                    ("gold", True, False)]
    assert "tolower()" in body["results"][2]["error"]
    assert body["summary"] == {"events": 4, "values": 2, "empty": 0, "skipped": 1, "errors": 1}
    assert (body["field"], body["field_type"]) == ("tier", "string")
    # a dry run stores nothing
    assert not Profile.objects.exists()


def test_evaluate_a_saved_mapping_converts_to_its_field_and_honours_the_limit(
        account: Account, manager: APIClient, visits: Field) -> None:
    mapping = save_mapping(account, field=visits, stream="web", expression="visits")
    seed(account, "web", {"visits": "3"}, {"visits": "many"}, {"visits": 7})

    body = manager.post(f"{API}/evaluate/", {"mapping": mapping.pk}, format="json").json()
    assert [(r["value"], bool(r["error"])) for r in body["results"]] == [
        (7, False), (None, True), (3, False)]
    assert "does not fit field type int" in body["results"][1]["error"]
    limited = manager.post(f"{API}/evaluate/", {"mapping": mapping.pk, "limit": 1},
                           format="json").json()
    assert [r["value"] for r in limited["results"]] == [7]
    # an edited expression is tried before it is saved
    tried = manager.post(f"{API}/evaluate/", {"mapping": mapping.pk,
                                              "expression": "toint(visits) * 2"},
                         format="json").json()
    assert tried["results"][0]["value"] == 14


def test_evaluate_masks_a_pii_fields_values_for_a_reader_without_pii_access(
        account: Account) -> None:
    # No seeded role has schema.view without pii.view; a custom one shows the rule holds.
    reader = Role.objects.create(code="schema_reader", name="Schema Reader",
                                 abbreviation="SRd")
    reader.permissions.set(Permission.objects.filter(code="schema.view"))
    _token, secret = make_token(account, ["schema_reader"])
    email = save_field(account, name="email", type="string", merge_operator="latest",
                       is_pii=True)
    mapping = save_mapping(account, field=email, stream="crm", expression="email(e)")
    seed(account, "crm", {"e": "Jane@Example.com"})

    masked = token_client(secret).post(f"{API}/evaluate/", {"mapping": mapping.pk},
                                       format="json").json()
    unmasked = make_manager_client(account).post(f"{API}/evaluate/", {"mapping": mapping.pk},
                                                 format="json").json()

    assert masked["results"][0]["value"] == "j***@example.com"
    assert unmasked["results"][0]["value"] == "jane@example.com"


def make_manager_client(account: Account) -> APIClient:
    _token, secret = make_token(account, ["data_manager"])
    return token_client(secret)


def test_evaluate_refuses_an_expression_that_does_not_compile(account: Account,
                                                              manager: APIClient) -> None:
    body = refused(manager.post(f"{API}/evaluate/", {"stream": "web",
                                                     "expression": "foo(x)"}, format="json"),
                   "invalid_expression")
    assert (body["line"], body["column"]) == (1, 1)
    refused(manager.post(f"{API}/evaluate/", {"expression": "x"}, format="json"), "invalid")
    refused(manager.post(f"{API}/evaluate/", {"stream": "web", "expression": "x",
                                              "field": "nosuch"}, format="json"),
            "unknown_field")


# --------------------------------------------------------------------------- the Lytics use case


LYTICS_FIELDS = [
    {"name": "email", "type": "string", "merge_operator": "latest", "is_identifier": True,
     "identifier_rank": 1, "identifier_capacity": 1, "is_pii": True},
    {"name": "user_id", "type": "string", "merge_operator": "latest", "is_identifier": True,
     "identifier_rank": 1, "identifier_capacity": 1},
    {"name": "_uid", "type": "[]string", "merge_operator": "capped", "capacity": 50,
     "is_identifier": True, "identifier_rank": 2, "identifier_capacity": 50},
    {"name": "taxonomy", "type": "string", "merge_operator": "latest"},
    {"name": "loyalty_tier", "type": "string", "merge_operator": "latest"},
    {"name": "preferred_activities", "type": "[]string", "merge_operator": "merge"},
]
LYTICS_MAPPINGS = [
    {"field": "_uid", "stream": "default", "expression": "oneof(`_uid`, anonymousId)"},
    {"field": "_uid", "stream": "default", "expression": "previousId"},
    {"field": "user_id", "stream": "default", "expression": "userId"},
    {"field": "email", "stream": "default",
     "expression": "email(oneof(email, traits.email))"},
    {"field": "taxonomy", "stream": "default", "expression": "taxonomy",
     "guard": "exists(taxonomy)"},
    {"field": "email", "stream": "crm_users", "expression": "email(origin.email)"},
    {"field": "loyalty_tier", "stream": "crm_users", "expression": "response.loyalty_tier"},
    {"field": "preferred_activities", "stream": "crm_users",
     "expression": "response.preferred_activities"},
]


def test_the_lytics_use_case_schema_defined_and_published_through_the_api(
        account: Account, manager: APIClient) -> None:
    """docs/schema.md's walkthrough: the fields and mappings of the Lytics guides, the
    localhost route rule, evaluate, publish; then a page view, an identify on the same cookie
    and a CRM record make one profile, found by email."""
    from django.test import Client

    from tests.profiles.conftest import basic_auth, jstag_query, make_write_key

    for field in LYTICS_FIELDS:
        assert manager.post(f"{API}/fields/", field, format="json").status_code == 201
    for mapping in LYTICS_MAPPINGS:
        response = manager.post(f"{API}/mappings/", mapping, format="json")
        assert response.status_code == 201, response.content
    rule = manager.post(f"{API}/route-rules/", {
        "name": "Local testing", "input_stream": "default",
        "expression": 'contains(`_url`, "localhost")', "output_stream": "app_divert"},
        format="json")
    assert rule.status_code == 201
    assert manager.get(f"{API}/diff/").json()["changes"] == 15
    published = manager.post(f"{API}/publish/", {"note": "Lytics use cases"}, format="json")
    assert published.status_code == 201, published.content

    _key, secret = make_write_key(account, stream="default")
    browser = Client()
    browser.cookies["seerid"] = "visitor-1"
    assert browser.get(f"/c/{account.aid}?"
                       f"{jstag_query({'_e': 'pv', 'taxonomy': 'cuisine'})}").status_code == 200
    assert browser.get(f"/c/{account.aid}?" + jstag_query(
        {"_e": "pv", "taxonomy": "dev", "_url": "http://localhost:8000/"})).status_code == 200
    assert browser.post("/v1/identify", data={
        "anonymousId": "visitor-1", "traits": {"email": "Mason@Example.com"}},
        content_type="application/json", HTTP_AUTHORIZATION=basic_auth(secret)
    ).status_code == 200
    crm = {"origin.email": "mason@example.com", "response.loyalty_tier": "gold",
           "response.preferred_activities": ["hiking", "cooking"]}
    assert browser.post("/collect/json/crm_users", data=crm, content_type="application/json",
                        HTTP_X_API_KEY=secret).status_code == 200
    assert browser.post("/v1/alias", data={
        "type": "alias", "previousId": "visitor-1", "userId": "user-42"},
        content_type="application/json", HTTP_AUTHORIZATION=basic_auth(secret)
    ).status_code == 200

    tried = manager.post(f"{API}/evaluate/", {
        "stream": "crm_users", "expression": "response.preferred_activities",
        "field": "preferred_activities"}, format="json").json()
    assert tried["results"][0]["value"] == ["hiking", "cooking"]

    process_pending(account_id=account.pk)
    reader = make_manager_client(account)
    profile = reader.get("/api/v1/profiles/email/mason@example.com")
    assert profile.status_code == 200, profile.content
    assert profile.json()["fields"] == {
        "_uid": ["visitor-1"], "email": "mason@example.com", "user_id": "user-42",
        "taxonomy": "cuisine", "loyalty_tier": "gold",
        "preferred_activities": ["cooking", "hiking"]}


# --------------------------------------------------------------------------- rebuild


def test_publish_with_rebuild_recomputes_profiles_with_the_new_version(
        account: Account, manager: APIClient) -> None:
    email = save_field(account, name="email", type="string", merge_operator="latest",
                       is_identifier=True, identifier_rank=1, identifier_capacity=1)
    save_mapping(account, field=email, stream="web", expression="email(email)")
    tier = save_field(account, name="tier", type="string", merge_operator="latest")
    mapping = save_mapping(account, field=tier, stream="web", expression="tier")
    publish(account)
    seed(account, "web", {"email": "ana@example.com", "tier": "GOLD"},
         {"email": "bo@example.com", "tier": "Silver"})
    process_pending(account_id=account.pk)
    assert sorted(p.field_values["tier"] for p in Profile.objects.for_account(account)) == [
        "GOLD", "Silver"]
    assert manager.post(f"{API}/rebuild/").status_code == 202
    process_pending(account_id=account.pk)
    save_mapping(account, instance=mapping, field=tier, stream="web",
                 expression="tolower(tier)")

    response = manager.post(f"{API}/publish/", {"rebuild": True}, format="json")

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["number"] == 2
    assert (body["rebuild"]["events_total"], body["rebuild"]["events_done"],
            body["rebuild"]["finished"], body["rebuild"]["schema_version"]) == (2, 0, False, 2)
    refused(manager.post(f"{API}/rebuild/"), "rebuild_in_progress", status=409)
    process_pending(account_id=account.pk)
    status = manager.get(f"{API}/rebuild/").json()["rebuild"]
    assert (status["finished"], status["events_done"], status["progress"]) == (True, 2, 1.0)
    live = Profile.objects.for_account(account).filter(merged_into__isnull=True)
    assert sorted(p.field_values["tier"] for p in live) == ["gold", "silver"]


def test_a_rebuild_needs_a_published_version(account: Account, manager: APIClient) -> None:
    assert manager.get(f"{API}/rebuild/").json() == {"rebuild": None}
    refused(manager.post(f"{API}/rebuild/"), "no_live_schema")


def test_publishing_with_a_rebuild_while_one_runs_is_refused_and_nothing_changes(
        account: Account, manager: APIClient, tier: Field) -> None:
    publish(account)
    seed(account, "web", {"tier": "x"})
    assert manager.post(f"{API}/rebuild/").status_code == 202
    save_field(account, name="score", type="number", merge_operator="max")

    with nothing_changes(account):
        refused(manager.post(f"{API}/publish/", {"rebuild": True}, format="json"),
                "rebuild_in_progress", status=409)


# --------------------------------------------------------------------------- roles, accounts


def _schema_objects(account: Account) -> dict[str, Any]:
    field = save_field(account, name="tier", type="string", merge_operator="latest")
    mapping = save_mapping(account, field=field, stream="web", expression="tier")
    rule = save_route_rule(account, input_stream="web", expression="exists(bot)",
                           output_stream="bots")
    publish(account)
    save_field(account, instance=field, keep_days=10)
    publish(account)
    save_field(account, instance=field, description="Tier")  # the draft differs
    return {"field": field.pk, "mapping": mapping.pk, "rule": rule.pk, "version": 1}


# (method, path, body) per endpoint; {field} etc. name objects of the requester's account.
ENDPOINTS: list[tuple[str, str, dict[str, Any] | None]] = [
    ("get", "/fields/", None),
    ("get", "/fields/{field}/", None),
    ("post", "/fields/", {"name": "score", "type": "number", "merge_operator": "max"}),
    ("patch", "/fields/{field}/", {"description": "Loyalty tier"}),
    ("put", "/fields/{field}/", {"name": "tier"}),
    ("delete", "/fields/{field}/", None),
    ("get", "/mappings/", None),
    ("get", "/mappings/{mapping}/", None),
    ("post", "/mappings/", {"field": "tier", "stream": "crm", "expression": "tier"}),
    ("patch", "/mappings/{mapping}/", {"expression": "tolower(tier)"}),
    ("delete", "/mappings/{mapping}/", None),
    ("get", "/route-rules/", None),
    ("get", "/route-rules/{rule}/", None),
    ("post", "/route-rules/", {"input_stream": "app", "expression": "true",
                               "output_stream": "app2"}),
    ("patch", "/route-rules/{rule}/", {"priority": 5}),
    ("delete", "/route-rules/{rule}/", None),
    ("get", "/validate/", None),
    ("get", "/diff/", None),
    ("post", "/publish/", {}),
    ("get", "/versions/", None),
    ("get", "/versions/{version}/", None),
    ("post", "/versions/{version}/revert/", {}),
    ("post", "/evaluate/", {"stream": "web", "expression": "tier"}),
    ("get", "/rebuild/", None),
    ("post", "/rebuild/", None),
]
ENDPOINT_IDS = [f"{method.upper()} {path}" for method, path, _body in ENDPOINTS]


def call(client: APIClient, method: str, path: str, body: dict[str, Any] | None,
         ids: dict[str, Any]) -> Any:
    url = API + path.format(**ids)
    if body is None:
        return getattr(client, method)(url)
    return getattr(client, method)(url, body, format="json")


@pytest.mark.parametrize(("method", "path", "body"), ENDPOINTS, ids=ENDPOINT_IDS)
def test_a_data_manager_may_use_every_schema_endpoint(account: Account, manager: APIClient,
                                                      method: str, path: str,
                                                      body: dict[str, Any] | None) -> None:
    ids = _schema_objects(account)
    response = call(manager, method, path, body, ids)
    assert 200 <= response.status_code < 300, response.content


@pytest.mark.parametrize(("method", "path", "body"), ENDPOINTS, ids=ENDPOINT_IDS)
def test_a_marketer_is_refused_every_schema_endpoint_and_nothing_changes(
        account: Account, marketer: APIClient, method: str, path: str,
        body: dict[str, Any] | None) -> None:
    ids = _schema_objects(account)
    with nothing_changes(account):
        response = call(marketer, method, path, body, ids)
    refused(response, "permission_denied", status=403)


DETAIL_ENDPOINTS = [e for e in ENDPOINTS if "{" in e[1]]


@pytest.mark.parametrize(("method", "path", "body"), DETAIL_ENDPOINTS,
                         ids=[f"{m.upper()} {p}" for m, p, _b in DETAIL_ENDPOINTS])
def test_another_accounts_schema_objects_are_not_found(
        account: Account, other_account: Account, manager: APIClient, method: str,
        path: str, body: dict[str, Any] | None) -> None:
    theirs = _schema_objects(other_account)
    with nothing_changes(other_account):
        response = call(manager, method, path, body, theirs)
    refused(response, "not_found", status=404)


def test_lists_show_only_the_accounts_own_schema(account: Account, other_account: Account,
                                                 manager: APIClient) -> None:
    _schema_objects(other_account)
    for path in ("/fields/", "/mappings/", "/route-rules/", "/versions/"):
        assert results(manager.get(API + path)) == [], path
    assert manager.get(f"{API}/validate/").json()["valid"] is True
    assert manager.get(f"{API}/diff/").json()["live_version"] is None


def test_evaluate_of_another_accounts_mapping_is_not_found_and_reads_no_events(
        account: Account, other_account: Account, manager: APIClient) -> None:
    ids = _schema_objects(other_account)
    seed(other_account, "web", {"tier": "secret"})

    refused(manager.post(f"{API}/evaluate/", {"mapping": ids["mapping"]}, format="json"),
            "not_found", status=404)
    # the same stream name in this account has no events: nothing of theirs shows
    body = manager.post(f"{API}/evaluate/", {"stream": "web", "expression": "tier"},
                        format="json").json()
    assert body["results"] == []


def test_the_openapi_schema_describes_the_schema_api(account: Account) -> None:
    paths = APIClient().get("/api/schema/", {"format": "json"}).json()["paths"]
    for path in ("/api/v1/schema/fields/", "/api/v1/schema/mappings/{id}/",
                 "/api/v1/schema/route-rules/", "/api/v1/schema/publish/",
                 "/api/v1/schema/versions/{number}/revert/", "/api/v1/schema/evaluate/",
                 "/api/v1/schema/rebuild/"):
        assert any(key.rstrip("/") == path.rstrip("/") for key in paths), path
