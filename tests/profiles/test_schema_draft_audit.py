"""The audit log of the schema's draft: creating, changing and deleting a field, a mapping or a
route rule through the API, the schema pages or the admin writes one AuditEvent each (action,
actor, target, what changed: the entry when created or deleted, ``[old, new]`` per changed
attribute when updated); a refused edit, a save that changes nothing and an edit without an
actor (seeds) write none."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from rest_framework.test import APIClient

from cdp_site.models import Account, AuditEvent
from profiles.models import Field, Mapping, RouteRule
from profiles.schema.drafts import (
    delete_field,
    delete_mapping,
    delete_route_rule,
    save_field,
    save_mapping,
    save_route_rule,
)
from tests.conftest import make_token, make_user, session_client, token_client

pytestmark = pytest.mark.django_db

API = "/api/v1/schema"
KINDS = ("schema_field.", "mapping.", "route_rule.")


def logged(account: Account) -> list[AuditEvent]:
    events = [e for e in AuditEvent.objects.filter(account=account).order_by("created_at", "id")
              if e.action.startswith(KINDS)]
    for event in events:
        event.full_clean()
        assert event.get_action_display() == AuditEvent.Action(event.action).label
    return events


@pytest.fixture
def token(account: Account) -> Any:
    return make_token(account, ["data_manager"])


@pytest.fixture
def manager(token: Any) -> APIClient:
    return token_client(token[1])


@pytest.fixture
def tier(account: Account) -> Field:
    return save_field(account, name="tier", type="string", merge_operator="latest")


def test_seeds_without_an_actor_write_nothing(account: Account, tier: Field) -> None:
    mapping = save_mapping(account, field=tier, stream="web", expression="tier")
    rule = save_route_rule(account, input_stream="a", expression="true",
                           output_stream="b")
    delete_route_rule(account, rule)
    delete_mapping(account, mapping)
    delete_field(account, tier)
    assert logged(account) == []


# --------------------------------------------------------------------------- fields


def test_a_field_created_changed_and_deleted_writes_one_entry_each(
        account: Account, manager: APIClient, token: Any) -> None:
    created = manager.post(f"{API}/fields/", {
        "name": "score", "type": "number", "merge_operator": "max", "description": "Lead"},
        format="json")
    assert created.status_code == 201, created.content
    field = Field.objects.get(account=account, name="score")
    [event] = logged(account)
    assert event.action == "schema_field.created"
    assert event.actor_token == token[0] and event.actor_user is None
    assert (event.target_type, event.target_id, event.target_label) == (
        "field", str(field.pk), "score")
    assert event.changes == {
        "name": "score", "description": "Lead", "type": "number", "merge_operator": "max",
        "capacity": None, "keep_days": None, "is_identifier": False, "identifier_rank": None,
        "identifier_capacity": None, "is_pii": False}

    patched = manager.patch(f"{API}/fields/{field.pk}/", {"merge_operator": "sum",
                                                          "keep_days": 90}, format="json")
    assert patched.status_code == 200, patched.content
    updated = logged(account)[-1]
    assert (updated.action, updated.target_id) == ("schema_field.updated", str(field.pk))
    assert updated.changes == {"merge_operator": ["max", "sum"], "keep_days": [None, 90]}

    same = manager.patch(f"{API}/fields/{field.pk}/", {"keep_days": 90}, format="json")
    assert same.status_code == 200
    assert len(logged(account)) == 2  # nothing changed: no entry

    save_mapping(account, field=field, stream="web", expression="tonumber(score)")
    assert manager.delete(f"{API}/fields/{field.pk}/").status_code == 204
    deleted = logged(account)[-1]
    assert (deleted.action, deleted.target_id, deleted.target_label) == (
        "schema_field.deleted", str(field.pk), "score")
    assert deleted.changes["name"] == "score"
    assert deleted.changes["mappings"] == ["score ← web: tonumber(score)"]
    assert [e.action for e in logged(account)] == [
        "schema_field.created", "schema_field.updated", "schema_field.deleted"]


def test_a_refused_field_edit_writes_nothing(account: Account, manager: APIClient,
                                             tier: Field) -> None:
    save_mapping(account, field=tier, stream="web", expression="tolower(tier)")
    wrong_type = manager.post(f"{API}/fields/", {"name": "visits", "type": "string",
                                                 "merge_operator": "sum"}, format="json")
    assert wrong_type.status_code == 400
    duplicate = manager.post(f"{API}/fields/", {"name": "tier"}, format="json")
    assert duplicate.status_code == 400
    breaks_mapping = manager.patch(f"{API}/fields/{tier.pk}/", {"type": "int"}, format="json")
    assert breaks_mapping.status_code == 400
    assert manager.delete(f"{API}/fields/999999/").status_code == 404
    assert logged(account) == []
    assert Field.objects.get(pk=tier.pk).type == "string"


# --------------------------------------------------------------------------- mappings


def test_a_mapping_created_changed_and_deleted_writes_one_entry_each(
        account: Account, tier: Field) -> None:
    user = make_user("ops", account, roles=["data_manager"])
    client = session_client(user)
    created = client.post(f"{API}/mappings/", {"field": "tier", "stream": "web",
                                               "expression": "tier"}, format="json")
    assert created.status_code == 201, created.content
    mapping = Mapping.objects.get(account=account)
    [event] = logged(account)
    assert (event.action, event.actor_user, event.actor_label) == (
        "mapping.created", user, "ops")
    assert (event.target_type, event.target_id) == ("mapping", str(mapping.pk))
    assert event.changes == {"field": "tier", "stream": "web", "expression": "tier",
                             "guard": ""}

    patched = client.patch(f"{API}/mappings/{mapping.pk}/", {
        "expression": "tolower(tier)", "guard": "exists(tier)"}, format="json")
    assert patched.status_code == 200, patched.content
    updated = logged(account)[-1]
    assert updated.action == "mapping.updated"
    assert updated.changes == {"expression": ["tier", "tolower(tier)"],
                               "guard": ["", "exists(tier)"]}

    save_field(account, name="level", type="string", merge_operator="latest")
    moved = client.patch(f"{API}/mappings/{mapping.pk}/", {"field": "level"}, format="json")
    assert moved.status_code == 200, moved.content
    assert logged(account)[-1].changes == {"field": ["tier", "level"]}

    assert client.delete(f"{API}/mappings/{mapping.pk}/").status_code == 204
    deleted = logged(account)[-1]
    assert (deleted.action, deleted.target_id) == ("mapping.deleted", str(mapping.pk))
    assert deleted.changes == {"field": "level", "stream": "web",
                               "expression": "tolower(tier)", "guard": "exists(tier)"}
    assert len(logged(account)) == 4


def test_a_refused_mapping_edit_writes_nothing(account: Account, manager: APIClient,
                                               tier: Field) -> None:
    save_field(account, name="visits", type="int", merge_operator="sum")
    mapping = save_mapping(account, field=tier, stream="web", expression="tier")
    bad_expression = manager.post(f"{API}/mappings/", {
        "field": "tier", "stream": "web", "expression": "tolower(tier"}, format="json")
    assert bad_expression.status_code == 400
    wrong_type = manager.post(f"{API}/mappings/", {
        "field": "visits", "stream": "web", "expression": "email(address)"}, format="json")
    assert wrong_type.status_code == 400
    unknown_field = manager.post(f"{API}/mappings/", {
        "field": "nosuch", "stream": "web", "expression": "x"}, format="json")
    assert unknown_field.status_code == 400
    bad_change = manager.patch(f"{API}/mappings/{mapping.pk}/", {"expression": "tier +"},
                               format="json")
    assert bad_change.status_code == 400
    assert logged(account) == []
    assert Mapping.objects.get(pk=mapping.pk).expression == "tier"


# --------------------------------------------------------------------------- route rules


def test_a_route_rule_created_changed_and_deleted_writes_one_entry_each(
        account: Account, manager: APIClient, token: Any) -> None:
    created = manager.post(f"{API}/route-rules/", {
        "name": "Local testing", "input_stream": "default",
        "expression": 'contains(`_url`, "localhost")', "output_stream": "app_divert",
        "priority": 10}, format="json")
    assert created.status_code == 201, created.content
    rule = RouteRule.objects.get(account=account)
    [event] = logged(account)
    assert (event.action, event.actor_token) == ("route_rule.created", token[0])
    assert (event.target_type, event.target_id) == ("routerule", str(rule.pk))
    assert event.changes == {"name": "Local testing", "input_stream": "default",
                             "expression": 'contains(`_url`, "localhost")',
                             "output_stream": "app_divert", "priority": 10, "active": True}

    patched = manager.patch(f"{API}/route-rules/{rule.pk}/", {"active": False,
                                                              "priority": 5}, format="json")
    assert patched.status_code == 200, patched.content
    updated = logged(account)[-1]
    assert (updated.action, updated.target_id) == ("route_rule.updated", str(rule.pk))
    assert updated.changes == {"priority": [10, 5], "active": [True, False]}

    assert manager.delete(f"{API}/route-rules/{rule.pk}/").status_code == 204
    deleted = logged(account)[-1]
    assert deleted.action == "route_rule.deleted"
    assert deleted.changes["output_stream"] == "app_divert"
    assert deleted.changes["active"] is False
    assert len(logged(account)) == 3


def test_a_refused_route_rule_edit_writes_nothing(account: Account,
                                                  manager: APIClient) -> None:
    save_route_rule(account, input_stream="a", expression="true", output_stream="b")
    back = save_route_rule(account, input_stream="b", expression="true",
                           output_stream="a", active=False)
    bad_expression = manager.post(f"{API}/route-rules/", {
        "input_stream": "default", "expression": 'contains(`_url`, "localhost"',
        "output_stream": "app_divert"}, format="json")
    assert bad_expression.status_code == 400
    loop = manager.patch(f"{API}/route-rules/{back.pk}/", {"active": True}, format="json")
    assert loop.status_code == 400
    not_a_number = manager.patch(f"{API}/route-rules/{back.pk}/", {"priority": "high"},
                                 format="json")
    assert not_a_number.status_code == 400
    assert logged(account) == []


def test_a_marketer_is_refused_and_nothing_is_written(account: Account, tier: Field) -> None:
    marketer = token_client(make_token(account, ["marketer"])[1])
    assert marketer.post(f"{API}/fields/", {"name": "x", "type": "string",
                                            "merge_operator": "latest"},
                         format="json").status_code == 403
    assert marketer.delete(f"{API}/fields/{tier.pk}/").status_code == 403
    assert logged(account) == []


# --------------------------------------------------------------------------- pages and admin


def test_the_schema_pages_record_the_signed_in_user(account: Account, tier: Field) -> None:
    user = make_user("editor", account, roles=["data_manager"])
    client = Client()
    client.force_login(user)
    assert client.post("/schema/fields/new/", {
        "name": "email", "type": "string", "merge_operator": "latest"}).status_code == 302
    assert client.post("/schema/mappings/new/", {
        "field": "tier", "stream": "web", "expression": "tolower(tier"}).status_code == 400
    assert client.post("/schema/mappings/new/", {
        "field": "tier", "stream": "web", "expression": "tier"}).status_code == 302
    rule = client.post("/schema/route-rules/new/", {
        "input_stream": "a", "expression": "true", "output_stream": "b", "priority": "0",
        "active": "on"})
    assert rule.status_code == 302
    mapping = Mapping.objects.get(account=account)
    assert client.post(f"/schema/mappings/{mapping.pk}/delete/").status_code == 302
    events = logged(account)
    assert [e.action for e in events] == ["schema_field.created", "mapping.created",
                                          "route_rule.created", "mapping.deleted"]
    assert {e.actor_user for e in events} == {user}


def test_the_admin_records_the_signed_in_user(account: Account, tier: Field) -> None:
    user = make_user("admin_editor", account, roles=["data_manager"])
    client = Client()
    client.force_login(user)
    form = {"name": "tier", "description": "", "type": "string", "merge_operator": "oldest",
            "capacity": "", "keep_days": "", "is_identifier": "", "identifier_rank": "",
            "identifier_capacity": "", "is_pii": ""}
    response = client.post(f"/admin/profiles/field/{tier.pk}/change/", form)
    assert response.status_code == 302, response.content.decode()[:2000]
    refused = client.post(f"/admin/profiles/field/{tier.pk}/change/",
                          {**form, "merge_operator": "sum"})
    assert refused.status_code == 200
    assert client.post(f"/admin/profiles/field/{tier.pk}/delete/",
                       {"post": "yes"}).status_code == 302
    events = logged(account)
    assert [e.action for e in events] == ["schema_field.updated", "schema_field.deleted"]
    assert events[0].changes == {"merge_operator": ["latest", "oldest"]}
    assert {e.actor_user for e in events} == {user}
