"""audiences.explain: each node's value and result, nested as the rule is, and a root result
that is exactly the rule's predicate."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from audiences.compiler import CompileContext, EventView, ProfileView, compile_predicate
from audiences.explain import explain, label, profile_view
from audiences.models import Audience, AudienceMembership
from audiences.rules import RuleError, RuleSchema
from profiles.masking import PiiPolicy
from profiles.models import Profile, ProfileConsent, ProfileEvent
from tests.audiences.builders import NOW
from tests.audiences.test_compiler_agreement import scenario

SCHEMA = RuleSchema(fields={"email": "string", "taxonomy": "string", "visits": "int",
                            "tags": "[]string"},
                    attributes={"90_day_revenue": "number"})
CTX = CompileContext(schema=SCHEMA, now=NOW)


def test_each_condition_has_the_profiles_value_and_its_result() -> None:
    rule = {"and": [
        {"field": "taxonomy", "op": "=", "value": "cuisine"},
        {"field": "email", "op": "exists"},
        {"or": [{"attribute": "90_day_revenue", "op": ">", "value": 100},
                {"not": {"consent": "email"}}]},
        {"event": "added_to_cart", "within_days": 7, "min_count": 2,
         "where": [{"property": "price", "op": ">", "value": 10}]},
        {"audience": "buyers", "op": "exclude"},
    ]}
    view = ProfileView(
        {"taxonomy": "Cuisine", "visits": 3},
        events=[EventView("added_to_cart", NOW - timedelta(days=1), {"price": 12}),
                EventView("added_to_cart", NOW - timedelta(days=2), {"price": 5}),
                EventView("added_to_cart", NOW - timedelta(days=3), {"price": 30}),
                EventView("added_to_cart", NOW - timedelta(days=30), {"price": 99})],
        consents={"email"}, attributes={"90_day_revenue": 250}, memberships={"buyers"})
    step = explain(rule, CTX, view)

    assert (step.kind, step.path, step.result) == ("and", "$", False)
    taxonomy, email, either, cart, buyers = step.children
    assert (taxonomy.path, taxonomy.name, taxonomy.value, taxonomy.result) == (
        "and[0]", "taxonomy", "Cuisine", True)
    assert taxonomy.label == 'taxonomy = "cuisine"'
    assert (email.value, email.has_value, email.result) == (None, False, False)
    assert email.label == "EXISTS email"
    assert (either.kind, either.result) == ("or", True)
    revenue, no_consent = either.children
    assert (revenue.path, revenue.value, revenue.result) == ("and[2].or[0]", 250, True)
    assert (no_consent.kind, no_consent.result) == ("not", False)
    assert (no_consent.children[0].path, no_consent.children[0].value) == (
        "and[2].or[1].not", True)
    # two of the three recent carts cost more than 10; the 30-day-old one is out of window
    assert (cart.value, cart.result) == (2, True)
    assert cart.label == ("at least 2 added_to_cart events where price > 10 in the last "
                          "7 days")
    assert (buyers.value, buyers.result, buyers.label) == (True, False, "NOT INCLUDE buyers")


def test_the_shown_value_can_be_masked_but_the_result_uses_the_raw_value() -> None:
    policy = PiiPolicy(pii_fields=frozenset({"email"}), unmasked=False)
    rule = {"field": "email", "op": "like", "value": "*@example.com"}
    step = explain(rule, CTX, ProfileView({"email": "jane@example.com"}), show=policy.value)
    assert step.result is True
    assert step.value == "j***@example.com"
    assert "jane" not in str(step.as_dict())


def test_a_rule_that_does_not_validate_is_refused() -> None:
    with pytest.raises(RuleError) as caught:
        explain({"and": [{"field": "nope", "op": "=", "value": 1}]}, CTX, ProfileView({}))
    assert caught.value.problems[0].path == "and[0]"


def test_labels() -> None:
    assert label({"event": "page", "within_days": 1}) == "page event in the last 1 day"
    assert label({"event": "page"}) == "page event ever"
    assert label({"field": "visits", "op": "between", "value": [1, 3]}) == \
        "visits BETWEEN 1 AND 3"
    assert label({"event": "buy", "where": [{"property": "sku", "op": "in",
                                             "value": ["a", "b"]},
                                            {"property": "x", "op": "exists"}]}) == \
        'buy event where sku in ("a", "b") and x exists ever'


def _results_agree(step: Any, ctx: CompileContext, view: ProfileView, rule: dict[str, Any]
                   ) -> None:
    assert step.result == compile_predicate(rule, ctx)(view), rule


def test_every_nodes_result_is_its_sub_rules_predicate() -> None:
    """Property test: for random schemas, profiles and rules, the root's result is the rule's
    predicate, and so is every node's for its own sub-rule."""

    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
    @given(scenario())
    def check(case: Any) -> None:
        schema, profiles, rules = case
        ctx = CompileContext(schema=schema, now=NOW)
        for data in profiles:
            view = ProfileView(
                field_values=data["values"],
                events=[EventView(n, at, {**own, **p}) for n, at, p, own in data["events"]],
                memberships=frozenset(data["memberships"]),
                consents=frozenset(data["consents"]), attributes=data["attributes"])
            for rule in rules:
                root = explain(rule, ctx, view)
                for step in root.walk():
                    _results_agree(step, ctx, view, _at(rule, step.path))

    check()


def _at(rule: dict[str, Any], path: str) -> dict[str, Any]:
    node: Any = rule
    if path == "$":
        return node
    for part in path.split("."):
        key, _, index = part.partition("[")
        node = node[key] if not index else node[key][int(index[:-1])]
    return node


@pytest.mark.django_db
def test_profile_view_of_a_stored_profile(account) -> None:
    profile = Profile.objects.create(account=account, field_values={"taxonomy": "cuisine"},
                                     first_seen=NOW, last_seen=NOW)
    other = Profile.objects.create(account=account, field_values={}, first_seen=NOW,
                                   last_seen=NOW)
    for pid, name, days in ((profile, "page", 1), (profile, "page", 40), (profile, "buy", 1),
                            (other, "page", 1)):
        ProfileEvent.objects.create(account=account, profile=pid, raw_event_id=0, stream="web",
                                    event=name, at=NOW - timedelta(days=days),
                                    properties={"n": days})
    buyers = Audience.objects.create(account=account, slug="buyers", name="Buyers",
                                     rule={"event": "buy"})
    AudienceMembership.objects.create(account=account, audience=buyers, profile=profile)
    ProfileConsent.objects.create(account=account, profile=profile, purpose="email",
                                  granted=True, at=NOW)
    ProfileConsent.objects.create(account=account, profile=profile, purpose="ads",
                                  granted=False, at=NOW)

    windowed = profile_view(profile, {"event": "page", "within_days": 7}, NOW)
    assert [(e.event, e.properties) for e in windowed.events] == [("page", {"n": 1})]
    ever = profile_view(profile, {"or": [{"event": "page", "within_days": 7},
                                         {"not": {"event": "page"}}]}, NOW)
    assert len(ever.events) == 2
    assert profile_view(profile, {"field": "taxonomy", "op": "exists"}, NOW).events == []
    assert windowed.memberships == {"buyers"}
    assert windowed.consents == {"email"}
    assert windowed.field_values == {"taxonomy": "cuisine"}


def test_value_test_checks_one_raw_value_as_a_condition_does() -> None:
    from audiences.compiler import value_test

    gold = value_test("text", "=", "Gold", NOW)
    assert gold("gold") and gold("GOLD") and not gold("silver")
    assert not gold(None) and not gold(3)  # no value, or a value of another type
    not_gold = value_test("text", "!=", "Gold", NOW)
    assert not_gold(None) and not_gold("silver") and not not_gold("Gold")
    over = value_test("numeric", ">", 10, NOW)
    assert over(12) and not over(10) and not over("12")


def test_explain_uses_only_the_compilers_public_names() -> None:
    import ast
    import inspect

    from audiences import explain as module

    tree = ast.parse(inspect.getsource(module))
    imported = [alias.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
                and node.module == "audiences.compiler" for alias in node.names]
    assert "value_test" in imported
    assert [name for name in imported if name.startswith("_")] == []
