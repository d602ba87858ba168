"""The issue's "Done when": the seed's audiences work end to end from events (collected,
processed by the pipeline, evaluated in real time, recomputed on schedule)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from audiences import membership
from audiences.models import Audience
from cdp_site.models import Account
from demo.audiences import SEED_AUDIENCES, seed_audiences
from tests.audiences.live import changes, lytics_account, members, process, profile_of

pytestmark = pytest.mark.django_db


def by_slug(account: Account) -> dict[str, Audience]:
    return {a.slug: a for a in Audience.objects.filter(account=account)}


def test_seed_audiences_from_events(account: Account) -> None:
    lytics_account(account)
    seed_audiences(account, compute=False)
    seed_audiences(account, compute=False)  # idempotent
    assert len(by_slug(account)) == len(SEED_AUDIENCES)
    membership.compute_account(account.pk)
    now = datetime.now(UTC)
    # anonymous visitors reading about cuisine (web)
    process(account, {"type": "page", "anonymousId": "anon-1",
                      "properties": {"taxonomy": "Cuisine", "title": "Oaxaca for food lovers"}},
            {"type": "page", "anonymousId": "anon-2", "properties": {"taxonomy": "beaches"}})
    # CRM records (crm_users)
    process(account, {"origin": {"email": "ann@example.com"},
                      "response": {"loyalty_tier": "Gold",
                                   "preferred_activities": ["Parasailing", "Hiking"]}},
            {"origin": {"email": "bob@example.com"},
             "response": {"loyalty_tier": "Silver", "preferred_activities": ["parasailing"]}},
            stream="crm_users")
    # carts: one abandoned, one bought, one too old
    process(account, {"type": "track", "event": "added_to_cart", "anonymousId": "cart-1",
                      "properties": {"sku": "KYOTO-5N", "price": 1200}},
            {"type": "track", "event": "added_to_cart", "anonymousId": "cart-2",
             "properties": {"sku": "LISBON-3N", "price": 540}},
            {"type": "track", "event": "purchased", "anonymousId": "cart-2",
             "properties": {"sku": "LISBON-3N", "price": 540}},
            at=now - timedelta(days=2))
    process(account, {"type": "track", "event": "added_to_cart", "anonymousId": "cart-3",
                      "properties": {"sku": "BALI-7N"}}, at=now - timedelta(days=9))

    seeded = by_slug(account)
    anon = profile_of(account, "_uid", "anon-1")
    ann = profile_of(account, "email", "ann@example.com")
    bob = profile_of(account, "email", "bob@example.com")
    abandoner = profile_of(account, "_uid", "cart-1")
    buyer = profile_of(account, "_uid", "cart-2")
    assert members(seeded["cuisine"]) == {anon.pk}
    assert members(seeded["gold_members"]) == {ann.pk}
    assert members(seeded["parasailing_fans"]) == {ann.pk, bob.pk}
    assert members(seeded["added_to_cart_7d"]) == {abandoner.pk, buyer.pk}
    assert members(seeded["purchased_7d"]) == {buyer.pk}
    assert members(seeded["cart_abandoners_7d"]) == {abandoner.pk}
    assert changes(seeded["cart_abandoners_7d"]) == [(abandoner.pk, "entry", "realtime")]
    assert {a.slug for a in membership.profile_audiences(account.pk, ann.pk)} == {
        "gold_members", "parasailing_fans"}

    # a full computation agrees with what real time did
    before = {slug: members(a) for slug, a in seeded.items()}
    membership.compute_account(account.pk)
    assert {slug: members(a) for slug, a in by_slug(account).items()} == before

    # a week later the cart is forgotten: the schedule takes the abandoner out
    membership.recompute_time_relative(now=now + timedelta(days=5, hours=1))
    assert members(seeded["cart_abandoners_7d"]) == set()
    assert changes(seeded["cart_abandoners_7d"])[-1] == (abandoner.pk, "exit", "schedule")
    assert members(seeded["gold_members"]) == {ann.pk}


def test_the_demo_seed_creates_them(tmp_path: Path) -> None:
    from demo.seed import seed_demo

    seed_demo(credentials_file=tmp_path / "demo.json")
    demo = Account.objects.get(slug="demo")
    assert {slug for slug, *_ in SEED_AUDIENCES} <= set(by_slug(demo))
    cuisine = by_slug(demo)["cuisine"]
    assert cuisine.rule == {"field": "taxonomy", "op": "=", "value": "cuisine"}
    assert cuisine.api_accessible


def test_the_demo_traffic_fills_every_seed_audience(db: None) -> None:
    """`make run`'s demo events (seed_demo_events) put people in each seed audience: cuisine
    readers (anonymous ones too), Gold members, parasailing fans and cart abandoners, in real
    time as the pipeline processes them, and a full computation afterwards agrees."""
    from django.core.management import call_command

    from audiences.models import AudienceMembership, MembershipChange
    from profiles.models import ProfileEvent
    from profiles.processing.pipeline import process_pending
    from tests.conftest import make_account

    demo = make_account("Demo Travel", slug="demo")
    call_command("seed_demo_events", days=3, sessions_per_slot=3)  # installs the schema
    seed_audiences(demo, compute=False)
    membership.compute_account(demo.pk)  # nothing processed yet: all empty
    process_pending(account_id=demo.pk)

    audiences = by_slug(demo)
    sizes = {slug: len(members(a)) for slug, a in audiences.items()}
    assert all(sizes[slug] > 0 for slug, *_ in SEED_AUDIENCES), sizes
    cuisine = members(audiences["cuisine"])
    anonymous = AudienceMembership.objects.filter(
        audience=audiences["cuisine"], profile__field_values__email__isnull=True)
    assert anonymous.exists()
    week = datetime.now(UTC) - timedelta(days=7)
    for pid in members(audiences["cart_abandoners_7d"]):
        events = ProfileEvent.objects.filter(profile_id=pid, at__gte=week)
        assert events.filter(event="added_to_cart").exists()
        assert not events.filter(event="purchased").exists()
    assert MembershipChange.objects.filter(audience=audiences["cuisine"],
                                           cause="realtime").exists()
    # the batch computation agrees with what real time built
    results = membership.compute_account(demo.pk)
    assert sum(r.entries + r.exits for r in results) == 0, [
        (r.slug, r.entries, r.exits) for r in results]
    assert members(by_slug(demo)["cuisine"]) == cuisine
