"""The four audiences of the issue's "Done when" select the right profiles."""

from __future__ import annotations

from datetime import timedelta

import pytest

from audiences.compiler import EventView, ProfileView, compile_predicate
from audiences.rules import RuleSchema
from cdp_site.models import Account
from tests.audiences.builders import NOW, context, create_side_tables, make_profile, select_ids

pytestmark = pytest.mark.django_db

SCHEMA = RuleSchema(fields={"email": "string", "_uid": "[]string", "taxonomy": "string",
                            "loyalty_tier": "string", "preferred_activities": "[]string"})


def test_seed_audiences_select_the_right_profiles() -> None:
    create_side_tables()
    account = Account.objects.create(name="Seed", slug="seed")
    ctx = context(SCHEMA)
    cook = make_profile(account, {"_uid": ["c1"], "taxonomy": "Cuisine"})
    gold = make_profile(account, {"email": "g@x.com", "loyalty_tier": "Gold",
                                  "preferred_activities": ["Snorkeling", "Parasailing"]})
    silver = make_profile(account, {"email": "s@x.com", "loyalty_tier": "silver",
                                    "preferred_activities": ["parasailing"]})
    cart = [("added_to_cart", NOW - timedelta(days=2), {"sku": "A1"})]
    abandoner = make_profile(account, {"_uid": ["c2"]}, events=cart)
    buyer = make_profile(account, {"_uid": ["c3"]}, events=[
        *cart, ("purchased", NOW - timedelta(days=1), {"sku": "A1"})])
    make_profile(account, {"_uid": ["c4"]}, events=[
        ("added_to_cart", NOW - timedelta(days=9), {})])  # too long ago

    assert select_ids(account, {"field": "taxonomy", "op": "=", "value": "cuisine"}, ctx) == {
        cook.pk}
    assert select_ids(account, {"field": "loyalty_tier", "op": "=", "value": "Gold"}, ctx) == {
        gold.pk}
    assert select_ids(account, {"field": "preferred_activities", "op": "contains",
                                "value": "Parasailing"}, ctx) == {gold.pk, silver.pk}
    abandoned = {"and": [{"event": "added_to_cart", "within_days": 7},
                         {"not": {"event": "purchased", "within_days": 7}}]}
    assert select_ids(account, abandoned, ctx) == {abandoner.pk}
    # the same audience with the cart and purchase audiences as include / exclude
    with_audiences = {"and": [{"audience": "added_to_cart_7d", "op": "include"},
                              {"audience": "purchased_7d", "op": "exclude"}]}
    predicate = compile_predicate(with_audiences, ctx)
    assert predicate(ProfileView({}, memberships={"added_to_cart_7d"}))
    assert not predicate(ProfileView({}, memberships={"added_to_cart_7d", "purchased_7d"}))
    assert compile_predicate(abandoned, ctx)(ProfileView(
        {}, events=[EventView(n, at, p) for n, at, p in cart]))
    assert buyer.pk not in select_ids(account, abandoned, ctx)
