"""profiles.conditions (the ``where`` of calculated attributes) agrees with the audience
rules' property conditions (audiences.compiler's Python predicate, itself proved equal to its
SQL): random conditions over random properties, the same answer."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from audiences.compiler import CompileContext, EventView, ProfileView, compile_predicate
from audiences.rules import RuleSchema
from profiles.conditions import ConditionError, compile_where, validate_where

NOW = datetime(2026, 6, 1, tzinfo=UTC)
CTX = CompileContext(schema=RuleSchema({}), now=NOW)

texts = st.sampled_from(["usd", "USD", "Usd", "eur", "", "ü", "Ü", "straße", "a*b", "a%b",
                         "abc", "İx", "ix"])
numbers = st.one_of(st.integers(-5, 5), st.sampled_from([0.1, 0.2, 0.30000000000000004, 2.5,
                                                         -1.0, 1e20]))
dates = st.sampled_from(["2026-01-01", "2026-01-01T10:00:00Z", "2025-12-31T23:59:59+02:00"])
stamps = st.sampled_from(["2026-01-01T00:00:00.000000Z", "2026-01-01T10:00:00.000000Z",
                          "2025-12-31T21:59:59.000000Z", "2027-01-01T00:00:00.000000Z"])
json_values = st.one_of(st.none(), st.booleans(), texts, numbers, stamps,
                        st.lists(texts, max_size=2))


@st.composite
def conditions(draw):
    kind = draw(st.sampled_from(["string", "number", "bool", "date", "any"]))
    ops = {"string": ["=", "!=", ">", "<=", "between", "contains", "not contains", "like", "in",
                      "not in", "exists", "not exists"],
           "number": ["=", "!=", ">", ">=", "<", "<=", "between", "in", "not in", "exists"],
           "bool": ["=", "!=", "exists", "not exists"],
           "date": ["=", ">", "<", "between", "exists", "not exists"],
           "any": ["exists", "not exists"]}[kind]
    op = draw(st.sampled_from(ops))
    scalar = {"string": texts, "number": numbers, "bool": st.booleans(), "date": dates,
              "any": st.none()}[kind]
    cond = {"property": draw(st.sampled_from(["a", "b"])), "op": op}
    if op in ("between",):
        cond["value"] = draw(st.lists(scalar, min_size=2, max_size=2))
    elif op in ("in", "not in"):
        cond["value"] = draw(st.lists(scalar, min_size=1, max_size=3))
    elif op not in ("exists", "not exists"):
        cond["value"] = draw(scalar)
    if kind != "any" and (op in ("exists", "not exists") or draw(st.booleans())):
        cond["type"] = kind
    return cond


@settings(max_examples=400, deadline=None)
@given(where=st.lists(conditions(), min_size=1, max_size=3),
       properties=st.dictionaries(st.sampled_from(["a", "b"]), json_values))
def test_where_agrees_with_audience_event_conditions(where, properties):
    predicate = compile_predicate({"event": "e", "where": where}, CTX)
    expected = predicate(ProfileView({}, events=[EventView("e", NOW, properties)]))
    assert compile_where(where)(properties) == expected


@pytest.mark.parametrize("where", [
    "currency = usd",
    [{"property": "x", "op": "=", "value": "now-30d", "type": "date"}],
    [{"property": "x", "op": "intersects", "value": ["a"]}],
    [{"property": "x", "op": "in", "value": []}],
    [{"property": "x", "op": "=", "value": float("inf")}],
    [{"property": "", "op": "exists"}],
    [{"property": "x", "op": "=", "value": {"a": 1}}],
])
def test_bad_conditions_are_refused(where):
    with pytest.raises(ConditionError) as refused:
        validate_where(where)
    assert refused.value.code == "bad_where" and refused.value.message


def test_no_condition_matches_everything():
    assert compile_where([])({}) is True
