"""GET /api/v1/audiences/{slug}/explain/?profile= (issue 12, item 6): the "Why?" page's
per-condition verdicts as JSON, from the same code (audiences.explain.explain_profile), PII
masked without pii.view, clear errors for a missing or unknown profile."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from audiences.models import Audience
from cdp_site.models import Account
from tests.audiences.page_data import EMAIL, MASKED_EMAIL, OTHER_EMAIL, build_world, users
from tests.conftest import make_account, make_token, token_client

pytestmark = pytest.mark.django_db

URL = "/api/v1/audiences/known_cooks/explain/"


@pytest.fixture
def world(account: Account) -> Any:
    return build_world(account)


@pytest.fixture
def people(account: Account) -> dict[str, Any]:
    return users(account)


def client_for(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def nodes(tree: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found = {tree["path"]: tree}
    for child in tree["children"]:
        found.update(nodes(child))
    return found


def test_a_member_gets_every_conditions_verdict(world: Any, people: dict[str, Any]) -> None:
    cook = world.profiles["cook"]
    response = client_for(people["admin"]).get(URL, {"profile": cook.pk})
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["audience"], body["profile_id"]) == ("known_cooks", cook.pk)
    assert body["member"] is True and body["since"] and body["result"] is True
    assert body["text"] and body["as_of"]
    steps = nodes(body["tree"])
    assert steps["$"]["kind"] == "and" and steps["$"]["result"] is True
    assert (steps["and[0]"]["kind"], steps["and[0]"]["name"]) == ("audience", "cuisine")
    assert steps["and[0]"]["result"] is True
    assert (steps["and[1]"]["kind"], steps["and[1]"]["value"]) == ("field", EMAIL)
    assert steps["and[1]"]["label"] and steps["and[1]"]["has_value"] is True


def test_a_non_member_found_by_identifier_says_why_not(world: Any,
                                                        people: dict[str, Any]) -> None:
    traveller = world.profiles["traveller"]
    body = client_for(people["admin"]).get(URL, {"profile": OTHER_EMAIL}).json()
    assert body["profile_id"] == traveller.pk
    assert body["member"] is False and body["since"] is None and body["result"] is False
    assert nodes(body["tree"])["and[0]"]["result"] is False


def test_the_json_agrees_with_the_why_page(world: Any, people: dict[str, Any]) -> None:
    admin = client_for(people["admin"])
    for profile in world.profiles.values():
        page = admin.get(f"/audiences/known_cooks/why/?q={profile.pk}").content.decode()
        body = admin.get(URL, {"profile": profile.pk}).json()
        for path, step in nodes(body["tree"]).items():
            verdict = "true" if step["result"] else "false"
            assert f'data-path="{path}" data-result="{verdict}"' in page


def test_pii_values_are_masked_without_pii_view(world: Any, people: dict[str, Any]) -> None:
    cook = world.profiles["cook"]
    response = client_for(people["marketer"]).get(URL, {"profile": cook.pk})
    assert response.status_code == 200
    assert EMAIL not in response.content.decode()
    assert nodes(response.json()["tree"])["and[1]"]["value"] == MASKED_EMAIL
    assert nodes(response.json()["tree"])["and[1]"]["result"] is True  # on the raw value


@pytest.mark.parametrize(("params", "status", "code"), [
    ({}, 400, "missing_profile"), ({"profile": "  "}, 400, "missing_profile"),
    ({"profile": "nobody@example.com"}, 404, "profile_not_found"),
    ({"profile": "99999999999999999999999"}, 404, "profile_not_found")])
def test_a_missing_or_unknown_profile_is_a_clear_error(
        world: Any, people: dict[str, Any], params: dict[str, str], status: int,
        code: str) -> None:
    response = client_for(people["admin"]).get(URL, params)
    assert response.status_code == status
    assert response.json()["code"] == code and response.json()["message"]


def test_a_rule_that_no_longer_compiles_is_a_conflict(world: Any,
                                                      people: dict[str, Any]) -> None:
    Audience.objects.filter(slug="known_cooks").update(rule={"field": "gone", "op": "exists"})
    response = client_for(people["admin"]).get(URL, {"profile": world.profiles["cook"].pk})
    assert response.status_code == 409 and response.json()["code"] == "invalid_rule"


def test_explain_needs_audiences_view_and_stays_in_the_account(
        world: Any, people: dict[str, Any]) -> None:
    cook = world.profiles["cook"]
    refused = client_for(people["data_manager"]).get(URL, {"profile": cook.pk})
    assert refused.status_code == 403
    _token, secret = make_token(make_account("Other", "other"))
    assert token_client(secret).get(URL, {"profile": cook.pk}).status_code == 404


def test_the_schema_describes_explain(world: Any, people: dict[str, Any]) -> None:
    schema = client_for(people["admin"]).get("/api/schema/", {"format": "json"}).json()
    operation = schema["paths"]["/api/v1/audiences/{slug}/explain/"]["get"]
    [param] = [p for p in operation["parameters"] if p["in"] == "query"]
    assert param["name"] == "profile" and param["required"] is True
    assert set(operation["responses"]) >= {"200", "400", "404", "409"}
