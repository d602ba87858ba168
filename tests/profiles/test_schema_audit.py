"""The audit log of the schema: publishing a draft, reverting to an earlier version and
starting a profile rebuild through the API each write one AuditEvent (action, actor, target,
what changed); a refused request writes none."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from rest_framework.test import APIClient

from cdp_site.models import Account, AuditEvent
from profiles.collection.messages import IncomingEvent
from profiles.collection.store import accept
from profiles.models import Field, ProfileRebuild, SchemaVersion
from profiles.schema.drafts import save_field, save_mapping
from profiles.schema.versions import publish
from tests.conftest import make_token, make_user, session_client, token_client

pytestmark = pytest.mark.django_db

API = "/api/v1/schema"


def logged(account: Account) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(account=account, action__startswith="schema.")
                .order_by("created_at", "id"))


def only(account: Account, action: str) -> AuditEvent:
    [event] = AuditEvent.objects.filter(account=account, action=action)
    event.full_clean()
    return event


@pytest.fixture
def token(account: Account) -> Any:
    return make_token(account, ["data_manager"])


@pytest.fixture
def manager(token: Any) -> APIClient:
    return token_client(token[1])


@pytest.fixture
def tier(account: Account) -> Field:
    tier = save_field(account, name="tier", type="string", merge_operator="latest")
    save_mapping(account, field=tier, stream="web", expression="tier")
    return tier


def test_publish_writes_one_entry_with_the_diff(account: Account, manager: APIClient,
                                                token: Any, tier: Field) -> None:
    response = manager.post(f"{API}/publish/", {"note": "tiers"}, format="json")
    assert response.status_code == 201, response.content
    version = SchemaVersion.objects.get(account=account, number=1)
    event = only(account, "schema.published")
    assert event.actor_token == token[0] and event.actor_user is None
    assert (event.target_type, event.target_id, event.target_label) == (
        "schemaversion", str(version.pk), "v1")
    assert event.changes == {"version": [None, 1], "note": "tiers",
                             "fields": {"added": ["tier"]},
                             "mappings": {"added": ["tier ← web: tier"]}}
    save_field(account, instance=tier, name="tier", type="string",
               merge_operator="oldest")
    assert manager.post(f"{API}/publish/", {}, format="json").status_code == 201
    second = logged(account)[-1]
    assert second.changes == {"version": [1, 2], "fields": {"changed": {
        "tier": {"merge_operator": ["latest", "oldest"]}}}}


def test_a_refused_publish_writes_nothing(account: Account, manager: APIClient,
                                          tier: Field) -> None:
    publish(account)
    nothing_new = manager.post(f"{API}/publish/", {}, format="json")
    assert nothing_new.status_code == 400
    save_mapping(account, field=tier, stream="crm", expression="tier")
    Field.objects.filter(pk=tier.pk).update(type="nonsense")  # a draft that fails validation
    invalid = manager.post(f"{API}/publish/", {}, format="json")
    assert invalid.status_code == 400
    bad_input = manager.post(f"{API}/publish/", {"rebuild": "maybe"}, format="json")
    assert bad_input.status_code == 400
    assert logged(account) == []


def test_revert_writes_one_reverted_entry(account: Account, manager: APIClient,
                                          tier: Field) -> None:
    publish(account)
    save_field(account, name="score", type="number", merge_operator="max")
    publish(account)
    response = manager.post(f"{API}/versions/1/revert/", {}, format="json")
    assert response.status_code == 201, response.content
    version = SchemaVersion.objects.get(account=account, number=3)
    event = only(account, "schema.reverted")
    assert event.target_id == str(version.pk)
    assert event.changes == {"version": [2, 3], "reverted_to": 1,
                             "note": "Revert to version 1", "fields": {"removed": ["score"]}}
    assert [e.action for e in logged(account)] == ["schema.reverted"]


def test_revert_of_the_draft_only_is_recorded_on_the_old_version(
        account: Account, manager: APIClient, tier: Field) -> None:
    first = publish(account)
    save_field(account, name="score", type="number", merge_operator="max")
    publish(account)
    response = manager.post(f"{API}/versions/1/revert/", {"publish": False}, format="json")
    assert response.status_code == 200, response.content
    event = only(account, "schema.reverted")
    assert event.target_id == str(first.pk)
    assert event.changes == {"draft": [None, "v1"], "published": False}


def test_a_refused_revert_writes_nothing(account: Account, manager: APIClient,
                                         tier: Field) -> None:
    publish(account)
    assert manager.post(f"{API}/versions/1/revert/", {}, format="json").status_code == 400
    assert manager.post(f"{API}/versions/9/revert/", {}, format="json").status_code == 404
    assert logged(account) == []


def test_a_rebuild_writes_one_entry_and_a_refused_one_none(
        account: Account, manager: APIClient, tier: Field) -> None:
    assert manager.post(f"{API}/rebuild/").status_code == 400  # nothing published
    assert logged(account) == []
    publish(account)
    accept(account, "web", [IncomingEvent(message={"tier": "gold"}, message_id="m-1",
                                          type="track", event="", event_at=datetime.now(UTC))],
           [], source="test", received_at=datetime.now(UTC))
    assert manager.post(f"{API}/rebuild/").status_code == 202
    started = ProfileRebuild.objects.get(account=account)
    event = only(account, "schema.rebuild_started")
    assert (event.target_type, event.target_id) == ("profilerebuild", str(started.pk))
    assert event.changes == {"schema_version": 1, "events_total": 1}
    assert manager.post(f"{API}/rebuild/").status_code == 409  # one is under way
    assert len(logged(account)) == 1


def test_publish_with_rebuild_writes_both_entries_for_a_signed_in_user(
        account: Account, tier: Field) -> None:
    user = make_user("ops@example.com", account, roles=["admin"])
    response = session_client(user).post(f"{API}/publish/", {"rebuild": True}, format="json")
    assert response.status_code == 201, response.content
    assert [e.action for e in logged(account)] == ["schema.published",
                                                   "schema.rebuild_started"]
    for event in logged(account):
        event.full_clean()
        assert event.actor_user == user and event.actor_label == "ops@example.com"
    assert SchemaVersion.objects.get(account=account).published_by == user
