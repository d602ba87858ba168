"""Masked PII cannot be spelled out through audience sizes (#18 finding 2): a role without
``pii.view`` may not use a pattern, part or range of a PII field in a rule, wherever a rule is
accepted (validate, create, update; JSON or text), as profile search already refuses a prefix
search on PII for it. Roles with ``pii.view`` keep every operator."""

from __future__ import annotations

from typing import Any

import pytest

from audiences.models import Audience
from cdp_site.models import Account
from tests.audiences import test_api
from tests.audiences.live import run_queued_tasks
from tests.conftest import make_token, token_client

pytestmark = pytest.mark.django_db
LIKE = {"field": "email", "op": "like", "value": "an*"}
TIER = {"field": "loyalty_tier", "op": "=", "value": "Gold"}
crm = test_api.crm  # the fixture: an account with the Lytics schema and CRM profiles


def client(account: Account, *roles: str) -> Any:
    return token_client(make_token(account, list(roles))[1])


def refused(response: Any) -> bool:
    body = response.json()
    return (response.status_code == 400 and body["code"] == "invalid_rule"
            and any(p["code"] == "pii_operator" for p in body["problems"]))


@pytest.mark.parametrize("rule", [
    LIKE,
    {"field": "email", "op": "contains", "value": "ann"},
    {"field": "email", "op": "not contains", "value": "ann"},
    {"field": "email", "op": ">=", "value": "an"},
    {"field": "email", "op": "between", "value": ["an", "ao"]},
    {"and": [TIER, {"not": LIKE}]},
])
def test_validate_refuses_revealing_operators_on_pii(crm: Account, rule: Any) -> None:
    response = client(crm, "marketer").post("/api/v1/audiences/validate/", {"rule": rule},
                                            format="json")
    assert refused(response), response.content
    assert "estimated_size" not in response.json()


def test_the_text_form_is_refused_the_same(crm: Account) -> None:
    response = client(crm, "audience_manager").post(
        "/api/v1/audiences/validate/", {"text": 'FILTER email LIKE "an*"'}, format="json")
    assert refused(response), response.content


def test_equality_and_other_fields_stay_open(crm: Account) -> None:
    marketer = client(crm, "marketer")
    for rule, size in (({"field": "email", "op": "=", "value": "ann@example.com"}, 1),
                       ({"field": "email", "op": "in", "value": ["ann@example.com"]}, 1),
                       ({"field": "email", "op": "exists"}, 3),
                       ({"field": "loyalty_tier", "op": "like", "value": "G*"}, 2)):
        response = marketer.post("/api/v1/audiences/validate/", {"rule": rule}, format="json")
        assert response.status_code == 200, (rule, response.content)
        assert response.json()["estimated_size"] == size


def test_create_and_update_are_refused_so_no_saved_size_reveals_it(
        crm: Account, django_capture_on_commit_callbacks: Any) -> None:
    marketer = client(crm, "marketer")
    created = marketer.post("/api/v1/audiences/", {"name": "A", "rule": LIKE}, format="json")
    assert refused(created) and not Audience.objects.exists()
    with django_capture_on_commit_callbacks(execute=True):
        ok = marketer.post("/api/v1/audiences/", {"name": "Gold", "rule": TIER}, format="json")
    assert ok.status_code == 201
    run_queued_tasks()
    changed = marketer.patch("/api/v1/audiences/gold/", {"rule": LIKE}, format="json")
    assert refused(changed)
    assert marketer.patch("/api/v1/audiences/gold/", {"text": 'FILTER email LIKE "an*"'},
                          format="json").status_code == 400
    assert Audience.objects.get(slug="gold").rule == TIER


def test_roles_with_pii_view_keep_every_operator(
        crm: Account, django_capture_on_commit_callbacks: Any) -> None:
    admin = client(crm, "admin")
    response = admin.post("/api/v1/audiences/validate/", {"rule": LIKE}, format="json")
    assert response.status_code == 200 and response.json()["estimated_size"] == 1
    with django_capture_on_commit_callbacks(execute=True):
        created = admin.post("/api/v1/audiences/", {"name": "An", "rule": LIKE}, format="json")
    assert created.status_code == 201
