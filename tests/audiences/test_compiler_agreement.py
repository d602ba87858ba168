"""The SQL evaluator and the Python predicate select the same profiles, for random schemas,
profiles (with events, memberships, consents, calculated attributes) and rules."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.db import transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from audiences.compiler import EventView, ProfileView, compile_predicate
from audiences.rules import RuleSchema
from cdp_site.models import Account
from profiles.conditions import KIND_OF_TYPE, OPERATORS
from profiles.schema.merge import stamp
from tests.audiences.builders import (
    NOW,
    context,
    create_side_tables,
    make_profile,
    select_ids,
)

pytestmark = pytest.mark.django_db

TYPES = [*KIND_OF_TYPE, "string", "string", "[]string", "int", "date"]
FIELD_NAMES = ["tier", "Tier", "a'b", "x); DROP TABLE profiles_profile; --", "visits", "é"]
EVENTS = ["added_to_cart", "purchased", "page"]
PROPS = ["sku", "price", "flag"]
AUDIENCES = ["gold", "cart"]
PURPOSES = ["personalization", "email"]
ALPHABET = "aAbB*%_\\'é É İ Σßz"

POOL = ["", "a", "A", "ab", "Ab", "aB*", "*b", "a*b", "É", "é", "İ", "i", "Σ",
        "\u03c3", "ß", "%", "_",
        "\\", "'", "a'b"]
words = st.one_of(st.sampled_from(POOL), st.sampled_from(POOL), st.text(alphabet=ALPHABET,
                                                                        max_size=4))
stamps = st.integers(-400, 400).map(lambda h: stamp(NOW + timedelta(hours=h)))
rule_dates = st.one_of(
    stamps,
    st.sampled_from(["now", "now-1d", "now-3d", "now+2h", "now-1w", "now-1M", "now-1y"]),
    st.integers(-20, 20).map(lambda d: (NOW + timedelta(days=d)).date().isoformat()),
)
numbers = st.one_of(st.integers(-3, 3), st.sampled_from([0.5, -1.5, 2.0, 1e16, 0.1]))

STORED: dict[str, Any] = {
    "string": words, "int": st.integers(-3, 3), "number": numbers, "bool": st.booleans(),
    "date": stamps, "[]string": st.lists(words, max_size=3),
    "map[string]int": st.dictionaries(words, st.integers(-3, 3), max_size=2),
    "map[string]number": st.dictionaries(words, numbers, max_size=2),
    "map[string]string": st.dictionaries(words, words, max_size=2),
    "map[string]date": st.dictionaries(words, stamps, max_size=2),
}
ODD = st.one_of(st.none(), words, st.integers(-3, 3), st.booleans(), st.lists(words, max_size=2))
RULE_VALUE = {"text": words, "numeric": numbers, "bool": st.booleans(), "date": rule_dates,
              "set": words, "map": words}


def stored_value(type_: str) -> st.SearchStrategy[Any]:
    # mostly the field's type; sometimes a value of another type (a schema changed since)
    return st.one_of(STORED[type_], STORED[type_], STORED[type_], ODD)


def rule_value(op: str, kind: str) -> st.SearchStrategy[Any]:
    shape = OPERATORS[op].shape
    scalar = RULE_VALUE.get("text" if kind == "set" else kind, st.none())
    if shape == "none":
        return st.none()
    if shape == "pair":
        return st.lists(scalar, min_size=2, max_size=2)
    if shape == "list":
        return st.lists(scalar, min_size=1, max_size=3)
    return scalar


@st.composite
def condition(draw: st.DrawFn, kind: str, key: str, name: str) -> dict[str, Any]:
    op = draw(st.sampled_from([o for o, spec in OPERATORS.items() if kind in spec.kinds]))
    node = {key: name, "op": op}
    value = draw(rule_value(op, kind))
    if value is not None:
        node["value"] = value
    return node


@st.composite
def property_condition(draw: st.DrawFn) -> dict[str, Any]:
    ptype = draw(st.sampled_from(["string", "number", "bool", "date", None]))
    kind = {"string": "text", "number": "numeric", "bool": "bool", "date": "date",
            None: "any"}[ptype]
    node = draw(condition(kind, "property", draw(st.sampled_from(PROPS))))
    if ptype is not None:
        node["type"] = ptype
    elif "value" in node:
        node.pop("value")
    return node


@st.composite
def event_condition(draw: st.DrawFn) -> dict[str, Any]:
    node: dict[str, Any] = {"event": draw(st.sampled_from(EVENTS))}
    where = draw(st.lists(property_condition(), max_size=2))
    if where:
        node["where"] = where
    if draw(st.booleans()):
        node["min_count"] = draw(st.integers(1, 3))
    if draw(st.booleans()):
        node["within_days"] = draw(st.integers(1, 20))
    return node


def rules(schema: RuleSchema) -> st.SearchStrategy[dict[str, Any]]:
    leaves = [
        st.sampled_from(sorted(schema.fields)).flatmap(
            lambda f: condition(KIND_OF_TYPE[schema.fields[f]], "field", f)),
        st.sampled_from(sorted(schema.attributes)).flatmap(
            lambda a: condition(KIND_OF_TYPE[schema.attributes[a]], "attribute", a)),
        event_condition(),
        st.builds(lambda s, op: {"audience": s, "op": op}, st.sampled_from(AUDIENCES),
                  st.sampled_from(["include", "exclude"])),
        st.sampled_from(PURPOSES).map(lambda p: {"consent": p}),
    ]
    return st.recursive(
        st.one_of(*leaves),
        lambda children: st.one_of(
            st.lists(children, min_size=1, max_size=3).map(lambda c: {"and": c}),
            st.lists(children, min_size=1, max_size=3).map(lambda c: {"or": c}),
            children.map(lambda c: {"not": c}),
        ),
        max_leaves=6,
    )


@st.composite
def event_props(draw: st.DrawFn) -> dict[str, Any]:
    return draw(st.dictionaries(st.sampled_from(PROPS), st.one_of(
        words, numbers, st.booleans(), stamps, st.none()), max_size=3))


@st.composite
def profile_data(draw: st.DrawFn, schema: RuleSchema) -> dict[str, Any]:
    values = {name: draw(stored_value(t)) for name, t in schema.fields.items()
              if draw(st.booleans())}
    values = {k: v for k, v in values.items() if v is not None or draw(st.booleans())}
    attributes = {name: draw(stored_value(t)) for name, t in schema.attributes.items()
                  if draw(st.booleans())}
    events = draw(st.lists(st.tuples(
        st.sampled_from(EVENTS),
        st.integers(-24 * 25, 24).map(lambda h: NOW + timedelta(hours=h, minutes=7)),
        event_props(), event_props()), max_size=4))  # mapped values, own properties
    return {"values": values, "attributes": attributes, "events": events,
            "memberships": draw(st.sets(st.sampled_from(AUDIENCES))),
            "consents": draw(st.sets(st.sampled_from(PURPOSES)))}


@st.composite
def scenario(draw: st.DrawFn) -> tuple[RuleSchema, list[dict[str, Any]], list[dict[str, Any]]]:
    names = draw(st.lists(st.sampled_from(FIELD_NAMES), min_size=1, max_size=4, unique=True))
    schema = RuleSchema(
        fields={n: draw(st.sampled_from(TYPES)) for n in names},
        attributes={"90_day_revenue": "number", "top_product": draw(st.sampled_from(TYPES))},
    )
    profiles = draw(st.lists(profile_data(schema), min_size=1, max_size=6))
    rule_list = draw(st.lists(rules(schema), min_size=1, max_size=4))
    return schema, profiles, rule_list


class _Rollback(Exception):
    pass


def test_sql_and_predicate_select_the_same_profiles() -> None:
    create_side_tables()
    account = Account.objects.create(name="Agreement", slug="agreement")

    @settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))
    @given(scenario())
    def check(case: tuple[RuleSchema, list[dict[str, Any]], list[dict[str, Any]]]) -> None:
        schema, profiles, rule_list = case
        ctx = context(schema)
        try:
            with transaction.atomic():
                views: dict[int, ProfileView] = {}
                for data in profiles:
                    row = make_profile(account, data["values"], events=data["events"],
                                       memberships=data["memberships"],
                                       consents=data["consents"],
                                       attributes=data["attributes"])
                    views[row.pk] = ProfileView(
                        field_values=data["values"],
                        events=[EventView(n, at, {**own, **p})
                                for n, at, p, own in data["events"]],
                        memberships=frozenset(data["memberships"]),
                        consents=frozenset(data["consents"]),
                        attributes=data["attributes"])
                for rule in rule_list:
                    predicate = compile_predicate(rule, ctx)
                    expected = {pk for pk, view in views.items() if predicate(view)}
                    assert select_ids(account, rule, ctx) == expected, rule
                raise _Rollback
        except _Rollback:
            pass

    check()
