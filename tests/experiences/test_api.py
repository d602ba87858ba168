"""The experiences management API: CRUD by key, nested variants and goals, actions, phases,
goals; every refusal answers {"code", "message", "problems"} and changes nothing."""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework.test import APIClient

from cdp_site.models import Account
from experiences import config
from experiences.models import Experience, Goal, Phase
from tests.conftest import make_token, token_client
from tests.experiences.lifecycle_helpers import ab_test, audience, goal

pytestmark = pytest.mark.django_db

URL = "/api/v1/experiences/"



def hero_body(**changes: Any) -> dict[str, Any]:
    return {
        "key": "hero-banner", "name": "Hero banner",
        "variants": [{"key": "control", "value": "Book now", "base": True,
                      "content": {"image": "/beach.jpg"}},
                     {"key": "bold", "value": "Book today!"}],
        "goals": [{"goal": "booked", "primary": True}],
        **changes,
    }


def create(client: APIClient, account: Account, **changes: Any) -> Any:
    goal(account)
    return client.post(URL, hero_body(**changes), format="json")


def problem_codes(response: Any) -> list[str]:
    return [p["code"] for p in response.json()["problems"]]


def test_create_read_and_list(admin_client: APIClient, account: Account) -> None:
    created = create(admin_client, account)
    assert created.status_code == 201, created.json()
    body = created.json()
    assert body["uid"] == "a" and body["status"] == "draft" and body["phase"] == 0
    assert [(v["key"], v["uid"], v["base"]) for v in body["variants"]] == [
        ("control", "0", True), ("bold", "1", False)]
    assert body["variants"][0]["content"] == {"image": "/beach.jpg"}
    assert body["goals"] == [{"goal": "booked", "event": "booked", "primary": True}]
    assert admin_client.get(f"{URL}hero-banner/").json()["key"] == "hero-banner"
    listed = admin_client.get(URL, {"status": "draft"}).json()
    assert [e["key"] for e in listed["results"]] == ["hero-banner"]
    assert admin_client.get(URL, {"status": "active"}).json()["results"] == []


def test_duplicate_key_is_refused(admin_client: APIClient, account: Account) -> None:
    create(admin_client, account)
    again = create(admin_client, account)
    assert again.status_code == 409 and again.json()["code"] == "duplicate_key"
    assert Experience.objects.count() == 1


def test_duplicate_variant_keys_are_refused(admin_client: APIClient, account: Account) -> None:
    refused = create(admin_client, account, variants=[{"key": "a", "base": True}, {"key": "a"}])
    assert refused.status_code == 400 and refused.json()["code"] == "duplicate_variant_key"
    assert refused.json()["problems"][0]["field"] == "variants[1].key"
    assert not Experience.objects.exists()


def test_a_malformed_body_is_refused_in_the_error_shape(admin_client: APIClient,
                                                        account: Account) -> None:
    refused = create(admin_client, account, traffic_allocation="most", variants="x")
    assert refused.status_code == 400 and refused.json()["code"] == "invalid"
    assert set(refused.json()["errors"]) == {"traffic_allocation", "variants"}


def test_activation_with_invalid_weights_is_refused(admin_client: APIClient,
                                                    account: Account) -> None:
    create(admin_client, account, distribution="custom", variants=[
        {"key": "control", "base": True, "weight": 0.7}, {"key": "bold", "weight": 0.7}])
    refused = admin_client.post(f"{URL}hero-banner/activate/")
    assert refused.status_code == 400 and refused.json()["code"] == "activation_refused"
    assert problem_codes(refused) == ["weights_not_100"]
    assert "140 %" in refused.json()["message"]
    assert Experience.objects.get().status == "draft"


def test_activation_without_a_goal_is_refused(admin_client: APIClient, account: Account) -> None:
    create(admin_client, account, goals=[])
    refused = admin_client.post(f"{URL}hero-banner/activate/")
    assert refused.status_code == 400 and problem_codes(refused) == ["no_primary_goal"]


def test_an_unknown_audience_is_refused(admin_client: APIClient, account: Account) -> None:
    refused = create(admin_client, account, target="audiences", target_audiences=["ghosts"])
    assert refused.status_code == 400 and refused.json()["code"] == "unknown_audience"
    assert "ghosts" in refused.json()["message"] and not Experience.objects.exists()


def test_a_non_api_accessible_audience_refuses_activation(admin_client: APIClient,
                                                          account: Account) -> None:
    audience(account, "cuisine", api_accessible=False)
    created = admin_client.post(URL, {
        "key": "cuisine-banner", "name": "Cuisine banner", "type": "segmented",
        "variants": [{"key": "base", "base": True},
                     {"key": "cuisine", "audience": "cuisine", "priority": 1}]}, format="json")
    assert created.status_code == 201, created.json()
    check = admin_client.get(f"{URL}cuisine-banner/check/").json()
    assert check["ready"] is False
    assert [p["code"] for p in check["problems"]] == ["audience_not_api_accessible"]
    refused = admin_client.post(f"{URL}cuisine-banner/activate/")
    assert refused.status_code == 400
    assert problem_codes(refused) == ["audience_not_api_accessible"]


def test_activate_pause_resume_complete(admin_client: APIClient, account: Account) -> None:
    create(admin_client, account)
    assert admin_client.get(f"{URL}hero-banner/check/").json() == {"ready": True,
                                                                  "problems": []}
    active = admin_client.post(f"{URL}hero-banner/activate/")
    assert active.status_code == 200 and active.json()["status"] == "active"
    assert active.json()["phase"] == 1
    assert admin_client.post(f"{URL}hero-banner/pause/").json()["status"] == "paused"
    assert admin_client.post(f"{URL}hero-banner/resume/").json()["status"] == "active"
    done = admin_client.post(f"{URL}hero-banner/complete/", {"winner": "bold"}, format="json")
    assert done.json()["status"] == "completed" and done.json()["winner"] == "bold"
    assert config.active_config(account.pk).get("hero-banner").served.key == "bold"


def test_invalid_transitions_are_refused(admin_client: APIClient, account: Account) -> None:
    create(admin_client, account)
    refused = admin_client.post(f"{URL}hero-banner/resume/")
    assert refused.status_code == 409 and refused.json()["code"] == "invalid_transition"
    admin_client.post(f"{URL}hero-banner/activate/")
    admin_client.post(f"{URL}hero-banner/complete/")
    again = admin_client.post(f"{URL}hero-banner/activate/")
    assert again.status_code == 409 and "completed" in again.json()["message"]


def test_an_unknown_winner_is_refused(admin_client: APIClient, account: Account) -> None:
    create(admin_client, account)
    admin_client.post(f"{URL}hero-banner/activate/")
    refused = admin_client.post(f"{URL}hero-banner/complete/", {"winner": "x"}, format="json")
    assert refused.status_code == 400 and refused.json()["code"] == "unknown_variant"
    assert Experience.objects.get().status == "active"


def test_a_weight_change_on_an_active_experience_starts_a_new_phase(
        admin_client: APIClient, account: Account) -> None:
    create(admin_client, account)
    admin_client.post(f"{URL}hero-banner/activate/")
    changed = admin_client.patch(f"{URL}hero-banner/", {
        "distribution": "custom", "reason": "bold looks better",
        "variants": [{"key": "control", "weight": 0.25}, {"key": "bold", "weight": 0.75}],
    }, format="json")
    assert changed.status_code == 200, changed.json()
    assert changed.json()["phase"] == 2
    phases = admin_client.get(f"{URL}hero-banner/phases/").json()
    assert [(p["number"], p["weights"], p["ended_at"] is None, p["reason"]) for p in phases] == [
        (1, {"control": 0.5, "bold": 0.5}, False, "activated"),
        (2, {"control": 0.25, "bold": 0.75}, True, "bold looks better")]
    split = admin_client.post(f"{URL}hero-banner/split/", {"traffic_allocation": 0.5},
                              format="json")
    assert split.json()["phase"] == 3
    assert Phase.objects.get(number=3).traffic_allocation == 0.5


def test_an_invalid_weight_change_while_active_changes_nothing(admin_client: APIClient,
                                                               account: Account) -> None:
    create(admin_client, account)
    admin_client.post(f"{URL}hero-banner/activate/")
    refused = admin_client.post(f"{URL}hero-banner/split/",
                                {"weights": {"control": 0.9, "bold": 0.9}}, format="json")
    assert refused.status_code == 400 and refused.json()["code"] == "weights_not_100"
    assert Phase.objects.count() == 1 and Experience.objects.get().distribution == "equal"


def test_delete(admin_client: APIClient, account: Account) -> None:
    create(admin_client, account)
    admin_client.post(f"{URL}hero-banner/activate/")
    refused = admin_client.delete(f"{URL}hero-banner/")
    assert refused.status_code == 409 and refused.json()["code"] == "experience_active"
    admin_client.post(f"{URL}hero-banner/pause/")
    assert admin_client.delete(f"{URL}hero-banner/").status_code == 204
    assert not Experience.objects.exists()


def test_another_accounts_experience_is_not_found(admin_client: APIClient,
                                                  other_account: Account) -> None:
    ab_test(other_account)
    assert admin_client.get(f"{URL}hero-banner/").status_code == 404
    assert admin_client.post(f"{URL}hero-banner/activate/").status_code == 404
    assert admin_client.get(URL).json()["results"] == []


def test_observers_read_but_do_not_change(account: Account) -> None:
    ab_test(account)
    _token, secret = make_token(account, ["observer"])
    observer = token_client(secret)
    assert observer.get(f"{URL}hero-banner/").status_code == 200
    assert observer.get(f"{URL}hero-banner/phases/").status_code == 200
    refused = observer.post(f"{URL}hero-banner/activate/")
    assert refused.status_code == 403 and "experiences.edit" in refused.json()["message"]


def test_goals_crud(admin_client: APIClient, account: Account) -> None:
    created = admin_client.post("/api/v1/goals/", {
        "key": "big-booking", "name": "Big booking", "event": "booked", "stream": "web",
        "where": [{"property": "price", "op": ">", "value": 500, "type": "number"}]},
        format="json")
    assert created.status_code == 201, created.json()
    assert created.json()["experiences"] == []
    renamed = admin_client.patch("/api/v1/goals/big-booking/", {"name": "Large booking"},
                                 format="json")
    assert renamed.json()["name"] == "Large booking"
    assert [g["key"] for g in admin_client.get("/api/v1/goals/").json()["results"]] == [
        "big-booking"]
    bad = admin_client.post("/api/v1/goals/", {"key": "x", "event": "booked",
                                               "where": {"price": 1}}, format="json")
    assert bad.status_code == 400 and bad.json()["code"] == "invalid_where"
    duplicate = admin_client.post("/api/v1/goals/", {"key": "big-booking", "event": "e"},
                                  format="json")
    assert duplicate.status_code == 409 and duplicate.json()["code"] == "duplicate_key"
    assert admin_client.delete("/api/v1/goals/big-booking/").status_code == 204
    assert not Goal.objects.exists()


def test_a_goal_in_use_cannot_be_deleted(admin_client: APIClient, account: Account) -> None:
    ab_test(account)
    refused = admin_client.delete("/api/v1/goals/booked/")
    assert refused.status_code == 409 and refused.json()["code"] == "goal_in_use"
    assert admin_client.get("/api/v1/goals/booked/").json()["experiences"] == ["hero-banner"]
