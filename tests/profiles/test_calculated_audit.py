"""The audit log of calculated attributes: create, change and delete through the API each
write one AuditEvent (action, actor, target, what changed); a refused request writes none."""

from __future__ import annotations

from typing import Any

import pytest

from cdp_site.models import Account, AuditEvent
from profiles.models import CalculatedAttribute
from tests.conftest import make_token, make_user, session_client, token_client
from tests.profiles.calculated_helpers import shop_schema

pytestmark = pytest.mark.django_db

URL = "/api/v1/calculated-attributes/"
REVENUE = {"name": "90_day_revenue", "aggregate": "sum", "event": "order",
           "property": "revenue", "window_days": 90}


def logged(account: Account) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(account=account,
                                          action__startswith="calculated_attribute.")
                .order_by("created_at", "id"))


def only(account: Account, action: str) -> AuditEvent:
    [event] = AuditEvent.objects.filter(account=account, action=action)
    event.full_clean()
    return event


def test_create_change_and_delete_each_write_one_entry(account: Account) -> None:
    shop_schema(account)
    token, secret = make_token(account, ["audience_manager"])
    api = token_client(secret)
    assert api.post(URL, REVENUE, format="json").status_code == 201
    attr = CalculatedAttribute.objects.get(account=account, name="90_day_revenue")
    created = only(account, "calculated_attribute.created")
    assert created.actor_token == token and created.actor_user is None
    assert (created.target_type, created.target_id) == ("calculatedattribute", str(attr.pk))
    assert created.changes == {"name": "90_day_revenue", "description": "", "active": True,
                               "aggregate": "sum", "event": "order", "where": [],
                               "property": "revenue", "window_days": 90}
    changed = api.patch(f"{URL}90_day_revenue/", {"window_days": 30,
                                                  "name": "30_day_revenue"}, format="json")
    assert changed.status_code == 200, changed.json()
    assert only(account, "calculated_attribute.updated").changes == {
        "name": ["90_day_revenue", "30_day_revenue"], "window_days": [90, 30]}
    assert api.delete(f"{URL}30_day_revenue/").status_code == 204
    deleted = only(account, "calculated_attribute.deleted")
    assert deleted.target_id == str(attr.pk)
    assert deleted.changes == {"name": "30_day_revenue", "aggregate": "sum", "event": "order"}


def test_a_save_that_changes_nothing_writes_nothing(account: Account) -> None:
    shop_schema(account)
    api = token_client(make_token(account, ["admin"])[1])
    assert api.post(URL, REVENUE, format="json").status_code == 201
    assert api.patch(f"{URL}90_day_revenue/", {"window_days": 90},
                     format="json").status_code == 200
    assert [e.action for e in logged(account)] == ["calculated_attribute.created"]


@pytest.mark.parametrize("body", [
    {**REVENUE, "aggregate": "median"},
    {**REVENUE, "window_days": 0},
    {**REVENUE, "name": "revenue"},  # a schema field's name
    {"name": "page_views", "aggregate": "count", "event": "page", "window_days": 7,
     "property": "revenue"},
])
def test_a_refused_create_writes_nothing(account: Account, body: dict[str, Any]) -> None:
    shop_schema(account)
    api = token_client(make_token(account, ["admin"])[1])
    assert api.post(URL, body, format="json").status_code == 400
    assert logged(account) == []


def test_a_refused_change_writes_nothing(account: Account) -> None:
    shop_schema(account)
    api = token_client(make_token(account, ["admin"])[1])
    assert api.post(URL, REVENUE, format="json").status_code == 201
    refused = api.patch(f"{URL}90_day_revenue/", {"window_days": "soon"}, format="json")
    assert refused.status_code == 400
    unknown = api.patch(f"{URL}90_day_revenue/", {"owner": "me"}, format="json")
    assert unknown.status_code == 400
    assert [e.action for e in logged(account)] == ["calculated_attribute.created"]


def test_a_signed_in_user_is_the_actor(account: Account) -> None:
    shop_schema(account)
    user = make_user("analyst@example.com", account, roles=["admin"])
    assert session_client(user).post(URL, REVENUE, format="json").status_code == 201
    event = only(account, "calculated_attribute.created")
    assert event.actor_user == user and event.actor_label == "analyst@example.com"
    assert CalculatedAttribute.objects.get(account=account).created_by == user
