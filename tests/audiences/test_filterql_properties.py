"""FilterQL's text form as a law over any names and values, not only the schema's: a rule
printed and parsed back is the same rule (rule -> text -> rule), and so the text printed again
is the same text (text -> rule -> text). Names here are anything an event, a property, an
audience or a consent purpose can be called (keywords, numbers, spaces, dots, colons, `@`,
unicode); values are any JSON scalar (large integers, floats, escapes, control characters).
tests/audiences/test_filterql.py covers the same round trip over the schema-valid rules the
compiler tests draw."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from audiences.filterql import KEYWORDS, parse_filter, to_text

PROPERTY_SETTINGS = settings(max_examples=500, deadline=None, derandomize=True)
names = st.one_of(
    st.sampled_from(sorted(KEYWORDS | {"FILTER", "Include", "1e5", "-3", "0", "a.b", "a-b",
                                       "x:y", "@a", "a b", "é", "(", ")", ",", '"'})),
    st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="`"),
            min_size=1, max_size=8),
)
scalars = st.one_of(
    st.text(max_size=8), st.integers(-(10**20), 10**20),
    st.floats(allow_nan=False, allow_infinity=False), st.booleans(),
)
ONE_VALUE = ["=", "!=", "<", ">", "<=", ">=", "contains", "not contains", "like"]
MANY_VALUES = ["in", "not in", "intersects"]


@st.composite
def conditions(draw: st.DrawFn, key: str) -> dict[str, Any]:
    name = draw(names)
    shape = draw(st.sampled_from(["one", "many", "between", "exists"]))
    if shape == "one":
        return {key: name, "op": draw(st.sampled_from(ONE_VALUE)), "value": draw(scalars)}
    if shape == "many":
        return {key: name, "op": draw(st.sampled_from(MANY_VALUES)),
                "value": draw(st.lists(scalars, min_size=1, max_size=3))}
    if shape == "between":
        return {key: name, "op": "between",
                "value": draw(st.lists(scalars, min_size=2, max_size=2))}
    return {key: name, "op": draw(st.sampled_from(["exists", "not exists"]))}


@st.composite
def property_conditions(draw: st.DrawFn) -> dict[str, Any]:
    node = draw(conditions("property"))
    kind = draw(st.sampled_from([None, "string", "number", "bool", "date"]))
    return {**node, "type": kind} if kind else node


@st.composite
def events(draw: st.DrawFn) -> dict[str, Any]:
    node: dict[str, Any] = {"event": draw(names)}
    where = draw(st.lists(property_conditions(), max_size=2))
    if where:
        node["where"] = where
    if draw(st.booleans()):
        node["min_count"] = draw(st.integers(0, 10**6))
    if draw(st.booleans()):
        node["within_days"] = draw(st.integers(0, 10**6))
    return node


def _has_own_negation(node: dict[str, Any]) -> bool:
    """`NOT INCLUDE x` is the rule `exclude x` and `NOT EXISTS f` is `not exists`: the
    canonical rule for those texts is the operator, not a `not` around the other one."""
    if node.get("op") == "include" and "audience" in node:
        return True
    return node.get("op") == "exists" and ("field" in node or "attribute" in node)


leaves = st.one_of(
    conditions("field"), conditions("attribute"), events(),
    st.builds(lambda s, op: {"audience": s, "op": op}, names,
              st.sampled_from(["include", "exclude"])),
    names.map(lambda p: {"consent": p}),
)
rules = st.recursive(
    leaves,
    lambda children: st.one_of(
        st.lists(children, min_size=1, max_size=3).map(lambda c: {"and": c}),
        st.lists(children, min_size=1, max_size=3).map(lambda c: {"or": c}),
        children.filter(lambda c: not _has_own_negation(c)).map(lambda c: {"not": c}),
    ),
    max_leaves=8,
)


@PROPERTY_SETTINGS
@given(rules)
def test_rule_to_text_to_rule_is_the_identity(rule: dict[str, Any]) -> None:
    text = to_text(rule)
    assert parse_filter(text) == rule, text


@PROPERTY_SETTINGS
@given(rules)
def test_text_to_rule_to_text_is_the_identity(rule: dict[str, Any]) -> None:
    text = to_text(rule)
    assert to_text(parse_filter(text)) == text


@pytest.mark.parametrize(("negated", "canonical"), [
    ({"not": {"audience": "gold", "op": "include"}}, {"audience": "gold", "op": "exclude"}),
    ({"not": {"field": "email", "op": "exists"}}, {"field": "email", "op": "not exists"}),
])
def test_a_negation_with_its_own_operator_prints_as_that_operator(
        negated: dict[str, Any], canonical: dict[str, Any]) -> None:
    assert to_text(negated) == to_text(canonical)
    assert parse_filter(to_text(negated)) == canonical


@pytest.mark.parametrize("text", [
    'filter and(tier = "gold", exists email)',
    "FILTER   OR( EVENT `Trip Booked`  MIN 3 ,NOT INCLUDE cart )",
    'FILTER AND(@score >= 1.5e3, `and` IN ("a", 2, true), x BETWEEN -1 AND 1)',
    '( tier   like "g*" )',
])
def test_written_text_reaches_its_canonical_text_in_one_round(text: str) -> None:
    canonical = to_text(parse_filter(text))
    assert parse_filter(canonical) == parse_filter(text)
    assert to_text(parse_filter(canonical)) == canonical
