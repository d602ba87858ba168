"""Text and date conditions read ``field_values ->> key`` (one lookup) and test the JSON type
after the comparison: a number, boolean, list or object stored in a string or date field
renders as text under ``->>`` and must still be "no value", as the Python predicate says."""

from __future__ import annotations

from typing import Any

import pytest

from audiences.compiler import ProfileView, compile_predicate
from audiences.rules import RuleSchema
from cdp_site.models import Account
from tests.audiences.builders import context, create_side_tables, make_profile, select_ids

pytestmark = pytest.mark.django_db

SCHEMA = RuleSchema(fields={"tier": "string", "joined": "date"}, attributes={})
STORED = [1, 1.5, True, False, None, ["gold"], {"gold": 1}, "1", "true", "Gold", '["gold"]',
          "2025-06-01T00:00:00.000000Z"]


@pytest.mark.parametrize("rule", [
    {"field": "tier", "op": "=", "value": "1"},
    {"field": "tier", "op": "=", "value": "true"},
    {"field": "tier", "op": "=", "value": "1.5"},
    {"field": "tier", "op": "=", "value": '["gold"]'},
    {"field": "tier", "op": "!=", "value": "1"},
    {"field": "tier", "op": "in", "value": ["1", "false", "gold"]},
    {"field": "tier", "op": "not in", "value": ["1", "false"]},
    {"field": "tier", "op": "contains", "value": "gold"},
    {"field": "tier", "op": "like", "value": "*ol*"},
    {"field": "tier", "op": ">", "value": "0"},
    {"field": "tier", "op": "exists"},
    {"field": "tier", "op": "not exists"},
    {"not": {"field": "tier", "op": "=", "value": "1"}},
    {"or": [{"field": "tier", "op": "=", "value": "1"}, {"field": "tier", "op": "exists"}]},
    {"field": "joined", "op": ">", "value": "2025-01-01"},
    {"field": "joined", "op": "exists"},
    {"not": {"field": "joined", "op": "<", "value": "2026-01-01"}},
])
def test_a_value_of_another_json_type_is_no_value(rule: dict[str, Any]) -> None:
    create_side_tables()
    account = Account.objects.create(name="Shapes", slug="shapes")
    ctx = context(SCHEMA)
    views = {}
    for stored in STORED:
        values = {"tier": stored, "joined": stored}
        views[make_profile(account, values).pk] = ProfileView(field_values=values)
    predicate = compile_predicate(rule, ctx)
    expected = {pk for pk, view in views.items() if predicate(view)}
    assert select_ids(account, rule, ctx) == expected
    # and the SQL never counts the rendered non-strings: only string values can match
    strings = {pk for pk, view in views.items() if isinstance(view.field_values["tier"], str)}
    if rule.get("op") in {"=", "in", "contains", "like", ">", "exists"}:
        assert expected <= strings
