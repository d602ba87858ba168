"""The audit log of experiences and goals: every change made through the API writes one
AuditEvent (action, actor, target, what changed as [old, new]); a refused request writes none."""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework.test import APIClient

from cdp_site.models import Account, AuditEvent
from experiences.models import Experience, Goal
from tests.conftest import make_token, make_user, session_client, token_client
from tests.experiences.lifecycle_helpers import goal

pytestmark = pytest.mark.django_db

URL = "/api/v1/experiences/"
GOALS = "/api/v1/goals/"


def hero_body(**changes: Any) -> dict[str, Any]:
    return {
        "key": "hero-banner", "name": "Hero banner",
        "variants": [{"key": "control", "value": "Book now", "base": True},
                     {"key": "bold", "value": "Book today!"}],
        "goals": [{"goal": "booked", "primary": True}],
        **changes,
    }


def logged(account: Account, prefix: str) -> list[AuditEvent]:
    """The account's audit entries whose action starts with ``prefix``, oldest first."""
    return list(AuditEvent.objects.filter(account=account, action__startswith=prefix)
                .order_by("created_at", "id"))


def only(account: Account, action: str) -> AuditEvent:
    [event] = AuditEvent.objects.filter(account=account, action=action)
    event.full_clean()
    return event


@pytest.fixture
def token(account: Account) -> Any:
    return make_token(account, ["admin"])


@pytest.fixture
def client(token: Any) -> APIClient:
    return token_client(token[1])


@pytest.fixture
def hero(client: APIClient, account: Account) -> Experience:
    goal(account)
    created = client.post(URL, hero_body(), format="json")
    assert created.status_code == 201, created.json()
    return Experience.objects.get(account=account, key="hero-banner")


def test_create_writes_one_entry_with_the_token_as_actor(
        client: APIClient, token: Any, hero: Experience, account: Account) -> None:
    event = only(account, "experience.created")
    assert event.actor_token == token[0] and event.actor_user is None
    assert event.actor_label.startswith("token ")
    assert (event.target_type, event.target_id, event.target_label) == (
        "experience", str(hero.pk), "Hero banner")
    assert event.changes["key"] == "hero-banner" and event.changes["uid"] == "a"
    assert event.changes["status"] == "draft"
    assert [v["key"] for v in event.changes["variants"]] == ["control", "bold"]
    assert event.changes["goals"] == [["booked", True]]
    assert event.get_action_display() == "Experience Created"


def test_refused_create_writes_nothing(client: APIClient, account: Account) -> None:
    goal(account)
    refused = client.post(URL, hero_body(key="no spaces allowed"), format="json")
    assert refused.status_code == 400
    unknown_goal = client.post(URL, hero_body(goals=["missing"]), format="json")
    assert unknown_goal.status_code == 400
    assert logged(account, "experience.") == []


def test_update_records_the_changed_fields_only(
        client: APIClient, hero: Experience, account: Account) -> None:
    changed = client.patch(f"{URL}hero-banner/", {"name": "Hero banner v2",
                                                  "description": "Summer"}, format="json")
    assert changed.status_code == 200, changed.json()
    event = only(account, "experience.updated")
    assert event.changes == {"name": ["Hero banner", "Hero banner v2"],
                             "description": ["", "Summer"]}
    assert event.target_id == str(hero.pk)


def test_update_that_changes_nothing_writes_nothing(
        client: APIClient, hero: Experience, account: Account) -> None:
    same = client.patch(f"{URL}hero-banner/", {"name": "Hero banner"}, format="json")
    assert same.status_code == 200
    assert logged(account, "experience.updated") == []


def test_refused_update_writes_nothing(
        client: APIClient, hero: Experience, account: Account) -> None:
    refused = client.patch(f"{URL}hero-banner/", {"traffic_allocation": 2}, format="json")
    assert refused.status_code == 400
    bad_goal = client.patch(f"{URL}hero-banner/", {"goals": ["missing"]}, format="json")
    assert bad_goal.status_code == 400
    assert logged(account, "experience.updated") == []


def test_activate_pause_resume_and_complete_each_write_one_entry(
        client: APIClient, hero: Experience, account: Account) -> None:
    assert client.post(f"{URL}hero-banner/activate/").status_code == 200
    assert only(account, "experience.activated").changes == {
        "status": ["draft", "active"], "phase": [0, 1]}
    assert client.post(f"{URL}hero-banner/pause/").status_code == 200
    assert only(account, "experience.paused").changes == {"status": ["active", "paused"]}
    assert client.post(f"{URL}hero-banner/resume/").status_code == 200
    assert only(account, "experience.resumed").changes == {"status": ["paused", "active"]}
    done = client.post(f"{URL}hero-banner/complete/", {"winner": "bold"}, format="json")
    assert done.status_code == 200, done.json()
    assert only(account, "experience.completed").changes == {
        "status": ["active", "completed"], "winner": "bold"}
    assert [e.action for e in logged(account, "experience.")] == [
        "experience.created", "experience.activated", "experience.paused",
        "experience.resumed", "experience.completed"]


def test_refused_transitions_write_nothing(
        client: APIClient, hero: Experience, account: Account) -> None:
    assert client.post(f"{URL}hero-banner/pause/").status_code == 409  # a draft
    no_goal = client.patch(f"{URL}hero-banner/", {"goals": []}, format="json")
    assert no_goal.status_code == 200
    assert client.post(f"{URL}hero-banner/activate/").status_code == 400  # no primary goal
    assert client.post(f"{URL}hero-banner/complete/").status_code == 409
    assert [e.action for e in logged(account, "experience.")] == [
        "experience.created", "experience.updated"]


def test_complete_with_an_unknown_winner_writes_nothing(
        client: APIClient, hero: Experience, account: Account) -> None:
    assert client.post(f"{URL}hero-banner/activate/").status_code == 200
    refused = client.post(f"{URL}hero-banner/complete/", {"winner": "nope"}, format="json")
    assert refused.status_code == 400
    assert logged(account, "experience.completed") == []


def test_a_split_change_while_live_records_the_new_phase(
        client: APIClient, hero: Experience, account: Account) -> None:
    assert client.post(f"{URL}hero-banner/activate/").status_code == 200
    split = client.post(f"{URL}hero-banner/split/",
                        {"weights": {"control": 0.8, "bold": 0.2}, "reason": "ramp down"},
                        format="json")
    assert split.status_code == 200, split.json()
    event = only(account, "experience.updated")
    assert event.changes["distribution"] == ["equal", "custom"]
    assert event.changes["phase"] == [1, 2]
    assert event.changes["phase_reason"] == [None, "ramp down"]
    old, new = event.changes["variants"]
    assert [v["weight"] for v in old] == [None, None]
    assert [v["weight"] for v in new] == [0.8, 0.2]
    refused = client.post(f"{URL}hero-banner/split/", {"weights": {"control": 0.5}},
                          format="json")
    assert refused.status_code == 400
    assert len(logged(account, "experience.updated")) == 1


def test_delete_writes_one_entry_and_a_refused_delete_none(
        client: APIClient, hero: Experience, account: Account) -> None:
    assert client.post(f"{URL}hero-banner/activate/").status_code == 200
    assert client.delete(f"{URL}hero-banner/").status_code == 409  # active
    assert logged(account, "experience.deleted") == []
    assert client.post(f"{URL}hero-banner/pause/").status_code == 200
    assert client.delete(f"{URL}hero-banner/").status_code == 204
    event = only(account, "experience.deleted")
    assert event.target_id == str(hero.pk) and event.target_label == "Hero banner"
    assert event.changes == {"key": "hero-banner", "status": "paused", "phase": 1}


def test_a_signed_in_user_is_the_actor(account: Account) -> None:
    user = make_user("marketer@example.com", account, roles=["admin"])
    client = session_client(user)
    goal(account)
    assert client.post(URL, hero_body(), format="json").status_code == 201
    event = only(account, "experience.created")
    assert event.actor_user == user and event.actor_token is None
    assert event.actor_label == "marketer@example.com"


def test_goal_create_update_delete_each_write_one_entry(
        client: APIClient, token: Any, account: Account) -> None:
    created = client.post(GOALS, {"key": "signup", "name": "Signup", "event": "signed_up"},
                          format="json")
    assert created.status_code == 201, created.json()
    saved = Goal.objects.get(account=account, key="signup")
    event = only(account, "goal.created")
    assert event.actor_token == token[0]
    assert (event.target_type, event.target_id) == ("goal", str(saved.pk))
    assert event.changes["key"] == "signup" and event.changes["event"] == "signed_up"
    where = [{"property": "plan", "op": "=", "value": "pro"}]
    changed = client.patch(f"{GOALS}signup/", {"name": "Pro signup", "where": where},
                           format="json")
    assert changed.status_code == 200, changed.json()
    assert only(account, "goal.updated").changes == {"name": ["Signup", "Pro signup"],
                                                     "where": [[], where]}
    assert client.delete(f"{GOALS}signup/").status_code == 204
    assert only(account, "goal.deleted").changes == {"key": "signup", "event": "signed_up"}


def test_refused_goal_requests_write_nothing(
        client: APIClient, hero: Experience, account: Account) -> None:
    bad = client.post(GOALS, {"key": "no spaces", "event": "x"}, format="json")
    assert bad.status_code == 400
    duplicate = client.post(GOALS, {"key": "booked", "event": "booked"}, format="json")
    assert duplicate.status_code == 409
    no_event = client.patch(f"{GOALS}booked/", {"event": ""}, format="json")
    assert no_event.status_code == 400
    assert client.delete(f"{GOALS}booked/").status_code == 409  # the experience measures it
    assert logged(account, "goal.") == []
