"""Tracking plans: the API (schema checked on save, changes applied at once) and what collect
does with them: allow records the violation on the event, block makes it a failed event."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from rest_framework.test import APIClient

from cdp_site.models import Account
from profiles.collection.messages import IncomingEvent
from profiles.collection.store import accept
from profiles.models import FailedEvent, RawEvent, TrackingPlan
from tests.profiles.raw_events import ago, run_aggregator

API = "/api/v1/tracking-plans/"
SIGNUP_SCHEMA = {
    "type": "object",
    "properties": {"properties": {"type": "object", "required": ["plan"],
                                  "properties": {"plan": {"enum": ["free", "pro"]}}}},
}


@pytest.fixture
def manager(client_for_roles: Callable[..., APIClient]) -> APIClient:
    return client_for_roles("data_manager")


def send(account: Account, *messages: dict[str, Any], stream: str = "web") -> Any:
    events = [IncomingEvent(message=m, message_id=m.get("messageId", ""), type="track",
                            event=m.get("event", ""), user_id="u1") for m in messages]
    return accept(account, stream, events, [], source="test", received_at=ago(seconds=30))


def signup(plan: Any = "pro", n: int = 0) -> dict[str, Any]:
    return {"type": "track", "event": "Signed Up", "userId": "u1", "messageId": f"s-{plan}-{n}",
            "properties": {"plan": plan}}


def plan_payload(**changes: Any) -> dict[str, Any]:
    return {"stream": "web", "event": "Signed Up", "schema": SIGNUP_SCHEMA, "mode": "allow",
            **changes}


def test_create_list_update_and_delete_a_plan(account: Account, manager: APIClient) -> None:
    created = manager.post(API, plan_payload(), format="json")
    assert created.status_code == 201, created.content
    plan = created.json()
    assert (plan["stream"], plan["event"], plan["mode"], plan["enabled"]) == (
        "web", "Signed Up", "allow", True)
    manager.post(API, plan_payload(stream="app", event="page", schema=True), format="json")

    assert [p["stream"] for p in manager.get(API).json()["results"]] == ["app", "web"]
    assert [p["event"] for p in manager.get(API, {"stream": "web"}).json()["results"]] == [
        "Signed Up"]
    assert manager.get(f"{API}{plan['id']}/").json()["schema"] == SIGNUP_SCHEMA

    patched = manager.patch(f"{API}{plan['id']}/", {"mode": "block"}, format="json")
    assert patched.status_code == 200, patched.content
    assert patched.json()["mode"] == "block"
    replaced = manager.put(f"{API}{plan['id']}/", plan_payload(enabled=False), format="json")
    assert replaced.json()["enabled"] is False and replaced.json()["mode"] == "allow"

    assert manager.delete(f"{API}{plan['id']}/").status_code == 204
    assert not TrackingPlan.objects.for_account(account).filter(stream="web").exists()


def test_an_invalid_schema_is_refused_with_the_reason(account: Account,
                                                      manager: APIClient) -> None:
    response = manager.post(API, plan_payload(schema={"type": "nonsense"}), format="json")
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_schema"
    assert "nonsense" in response.json()["message"]
    not_object = manager.post(API, plan_payload(schema=[1, 2]), format="json")
    assert not_object.status_code == 400
    assert not_object.json()["code"] == "invalid_schema"
    created = manager.post(API, plan_payload(), format="json").json()
    patched = manager.patch(f"{API}{created['id']}/", {"schema": {"minimum": "x"}},
                            format="json")
    assert patched.status_code == 400
    assert TrackingPlan.objects.get(pk=created["id"]).schema == SIGNUP_SCHEMA
    assert not TrackingPlan.objects.for_account(account).exclude(pk=created["id"]).exists()


def test_a_second_plan_for_the_same_event_conflicts(account: Account,
                                                    manager: APIClient) -> None:
    assert manager.post(API, plan_payload(), format="json").status_code == 201
    again = manager.post(API, plan_payload(mode="block"), format="json")
    assert again.status_code == 409
    assert again.json()["code"] == "plan_exists"


def test_plans_need_the_schema_permission_and_stay_in_their_account(
        account: Account, other_account: Account,
        client_for_roles: Callable[..., APIClient]) -> None:
    theirs = TrackingPlan.objects.create(account=other_account, stream="web", event="x",
                                         schema={})
    marketer = client_for_roles("marketer")
    assert marketer.get(API).status_code == 403
    assert marketer.post(API, plan_payload(), format="json").status_code == 403
    manager = client_for_roles("data_manager")
    assert manager.get(f"{API}{theirs.pk}/").status_code == 404
    assert manager.patch(f"{API}{theirs.pk}/", {"mode": "block"}, format="json").status_code == (
        404)
    assert manager.delete(f"{API}{theirs.pk}/").status_code == 404
    assert manager.get(API).json()["results"] == []


def test_allow_keeps_the_event_with_the_violation_recorded(account: Account,
                                                           manager: APIClient) -> None:
    manager.post(API, plan_payload(), format="json")

    outcome = send(account, signup("pro"), signup("gold"))

    assert (outcome.stored, outcome.failed) == (2, 0)
    rows = {e.message["properties"]["plan"]: e for e in RawEvent.objects.for_account(account)}
    assert rows["pro"].warnings is None
    (warning,) = rows["gold"].warnings
    assert warning["code"] == "tracking_plan"
    assert warning["violations"][0]["path"] == "properties/plan"


def test_block_sends_the_event_to_failed_events(account: Account, manager: APIClient) -> None:
    manager.post(API, plan_payload(mode="block"), format="json")

    outcome = send(account, signup("pro"), signup("gold"), {"type": "track", "event": "Other",
                                                            "messageId": "o-1"})

    assert (outcome.stored, outcome.failed) == (2, 1)
    stored = {e.message_id for e in RawEvent.objects.for_account(account)}
    assert stored == {"s-pro-0", "o-1"}
    failed = FailedEvent.objects.for_account(account).get()
    assert (failed.code, failed.stream, failed.message_id) == ("tracking_plan", "web", "s-gold-0")
    assert "Signed Up" in failed.reason
    assert '"gold"' in failed.body


def test_changes_apply_to_the_next_event(account: Account, manager: APIClient) -> None:
    send(account, signup("gold", 1))  # caches "no plan" for the stream in this process
    plan = manager.post(API, plan_payload(mode="block"), format="json").json()
    assert send(account, signup("gold", 2)).failed == 1
    manager.patch(f"{API}{plan['id']}/", {"mode": "allow"}, format="json")
    assert send(account, signup("gold", 3)).stored == 1
    manager.patch(f"{API}{plan['id']}/", {"enabled": False}, format="json")
    send(account, signup("gold", 4))
    manager.delete(f"{API}{plan['id']}/")
    send(account, signup("gold", 5))
    warned = {e.message_id: bool(e.warnings) for e in RawEvent.objects.for_account(account)}
    assert warned == {"s-gold-1": False, "s-gold-3": True, "s-gold-4": False, "s-gold-5": False}


def test_violations_and_blocks_are_counted_per_event(account: Account,
                                                     manager: APIClient) -> None:
    manager.post(API, plan_payload(), format="json")
    manager.post(API, plan_payload(event="Order Completed", mode="block",
                                   schema={"required": ["revenue"]}), format="json")
    send(account, signup("gold", 1), signup("gold", 2), signup("pro", 3),
         {"type": "track", "event": "Order Completed", "messageId": "o-1"})
    run_aggregator()

    body = manager.get("/api/v1/streams/web/violations").json()

    assert body["events"] == [
        {"event": "Signed Up", "violations": 2, "blocked": 0},
        {"event": "Order Completed", "violations": 0, "blocked": 1},
    ]
