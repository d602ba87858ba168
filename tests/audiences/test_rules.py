"""Bad rules are refused with the JSON path of the bad node; injection has no effect."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection

from audiences.rules import MAX_DEPTH, RuleError, RuleSchema, validate_rule
from cdp_site.models import Account
from tests.audiences.builders import context, create_side_tables, make_profile, select_ids

SCHEMA = RuleSchema(fields={"taxonomy": "string", "visits": "int", "signup": "date",
                            "preferred_activities": "[]string", "vip": "bool"},
                    attributes={"90_day_revenue": "number"})


def problems(rule: Any, **kwargs: Any) -> list[tuple[str, str]]:
    with pytest.raises(RuleError) as caught:
        validate_rule(rule, SCHEMA, **kwargs)
    return [(p.path, p.code) for p in caught.value.problems]


def test_unknown_field_is_refused_with_its_path() -> None:
    rule = {"and": [{"field": "taxonomy", "op": "=", "value": "x"},
                    {"or": [{"field": "nope", "op": "=", "value": "x"}]}]}
    assert problems(rule) == [("and[1].or[0]", "unknown_field")]


def test_operator_that_does_not_fit_the_type_is_refused() -> None:
    assert problems({"not": {"field": "vip", "op": ">", "value": True}}) == [
        ("not", "operator_type")]
    assert problems({"field": "visits", "op": "contains", "value": "1"}) == [
        ("$", "operator_type")]


@pytest.mark.parametrize("rule", [
    {"field": "visits", "op": ">", "value": "ten"},
    {"field": "taxonomy", "op": "=", "value": 3},
    {"field": "vip", "op": "=", "value": "yes"},
    {"field": "signup", "op": ">", "value": "last tuesday"},
    {"field": "visits", "op": "between", "value": [1]},
    {"field": "visits", "op": "in", "value": []},
    {"attribute": "90_day_revenue", "op": ">", "value": "100"},
    {"field": "taxonomy", "op": "exists", "value": "x"},
])
def test_value_of_the_wrong_type_is_refused(rule: dict[str, Any]) -> None:
    assert problems({"and": [rule]}) == [("and[0]", "value_type")]


def test_relative_dates_and_events_validate() -> None:
    validate_rule({"and": [
        {"field": "signup", "op": ">", "value": "now-30d"},
        {"field": "signup", "op": "between", "value": ["2024-01-01", "now+1M"]},
        {"event": "added_to_cart", "where": [{"property": "price", "op": ">", "value": 10}],
         "min_count": 2, "within_days": 7},
        {"attribute": "90_day_revenue", "op": ">", "value": 100},
        {"consent": "personalization"},
    ]}, SCHEMA)


def test_nesting_deeper_than_twenty_levels_is_refused() -> None:
    rule: dict[str, Any] = {"field": "vip", "op": "exists"}
    for _ in range(MAX_DEPTH - 1):
        rule = {"not": rule}
    validate_rule(rule, SCHEMA)  # exactly 20 levels
    assert problems({"and": [rule]})[0][1] == "too_deep"
    deep: dict[str, Any] = {"field": "vip", "op": "exists"}
    for _ in range(5000):  # no RecursionError either
        deep = {"or": [deep]}
    assert problems(deep)[0][1] == "too_deep"


def test_audience_including_itself_directly_is_refused() -> None:
    rules = {"a": {"audience": "a", "op": "include"}}
    assert problems(rules["a"], slug="a", resolve=rules.get) == [("$", "self_reference")]


def test_audience_including_itself_through_others_is_refused() -> None:
    rules = {"a": {"and": [{"consent": "email"}, {"audience": "b", "op": "exclude"}]},
             "b": {"or": [{"audience": "c", "op": "include"}]},
             "c": {"audience": "a", "op": "include"}}
    assert problems(rules["a"], slug="a", resolve=rules.get) == [("and[1]", "self_reference")]
    assert problems({"audience": "zzz", "op": "include"}, slug="a", resolve=rules.get) == [
        ("$", "unknown_audience")]
    validate_rule(rules["b"], SCHEMA, slug="x", resolve=rules.get)  # a cycle not through x


@pytest.mark.django_db
def test_sql_injection_through_a_field_name_or_value_has_no_effect() -> None:
    create_side_tables()
    account = Account.objects.create(name="Inj", slug="inj")
    evil = "taxonomy') OR 1=1; DROP TABLE profiles_profile; --"
    schema = RuleSchema(fields={evil: "string", "taxonomy": "string"})
    hit = make_profile(account, {evil: "' OR '1'='1", "taxonomy": "x"})
    make_profile(account, {"taxonomy": "' OR '1'='1"})
    ctx = context(schema)
    assert select_ids(account, {"field": evil, "op": "=", "value": "' OR '1'='1"}, ctx) == {
        hit.pk}
    assert select_ids(account, {"field": "taxonomy", "op": "like",
                                "value": "%' OR 1=1 --*"}, ctx) == set()
    with connection.cursor() as cur:
        cur.execute("SELECT count(*) FROM profiles_profile WHERE account_id = %s", [account.pk])
        assert cur.fetchone()[0] == 2
