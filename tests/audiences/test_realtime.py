"""Real-time membership through the real pipeline: events stored, processed, and the
audiences step records entries and exits (with the raw event that caused them)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from audiences import editing, membership
from audiences.models import Audience, AudienceMembership
from cdp_site.models import Account
from profiles.models import RawEvent
from tests.audiences.live import changes, lytics_account, members, process, profile_of

pytestmark = pytest.mark.django_db




@pytest.fixture
def live(account: Account) -> Account:
    return lytics_account(account)


def audience(account: Account, slug: str, rule: Any = None, text: str | None = None
             ) -> Audience:
    created = editing.create_audience(account, None, name=slug, slug=slug, rule=rule,
                                      text=text, compute=False)
    membership.compute_audiences(account.pk, [created.pk])
    return Audience.objects.get(pk=created.pk)


def page(uid: str, taxonomy: str, **extra: Any) -> dict[str, Any]:
    return {"type": "page", "anonymousId": uid, "properties": {"taxonomy": taxonomy}, **extra}


def track(uid: str, name: str, **properties: Any) -> dict[str, Any]:
    return {"type": "track", "event": name, "anonymousId": uid, "properties": properties}


def last_raw_id(account: Account) -> int:
    return RawEvent.objects.for_account(account).order_by("-id").values_list("id",
                                                                             flat=True)[0]


def test_a_field_change_enters_and_leaves_with_its_raw_event(live: Account) -> None:
    cuisine = audience(live, "cuisine", text='FILTER taxonomy = "cuisine"')
    process(live, page("v1", "Cuisine"))
    visitor = profile_of(live, "_uid", "v1")
    assert members(cuisine) == {visitor.pk}
    assert changes(cuisine) == [(visitor.pk, "entry", "realtime")]
    entry = cuisine.changes.get()
    assert entry.raw_event_id == last_raw_id(live)
    process(live, page("v1", "beaches"))
    assert members(cuisine) == set()
    assert changes(cuisine)[-1] == (visitor.pk, "exit", "realtime")
    assert Audience.objects.get(pk=cuisine.pk).size == 0


def test_crm_data_and_an_including_audience_in_one_batch(live: Account) -> None:
    gold = audience(live, "gold", {"field": "loyalty_tier", "op": "=", "value": "Gold"})
    para = audience(live, "para", text='FILTER preferred_activities CONTAINS "parasailing"')
    both = audience(live, "both", text="FILTER AND(INCLUDE gold, INCLUDE para)")
    process(live, {"origin": {"email": "ann@example.com"},
                   "response": {"loyalty_tier": "Gold",
                                "preferred_activities": ["Parasailing", "Hiking"]}},
            {"origin": {"email": "bob@example.com"},
             "response": {"loyalty_tier": "Gold", "preferred_activities": ["Hiking"]}},
            stream="crm_users")
    ann = profile_of(live, "email", "ann@example.com")
    bob = profile_of(live, "email", "bob@example.com")
    assert members(gold) == {ann.pk, bob.pk}
    assert members(para) == {ann.pk}
    assert members(both) == {ann.pk}
    assert Audience.objects.get(pk=both.pk).size == 1
    # bob leaves gold: nothing else about him changes
    process(live, {"origin": {"email": "ann@example.com"},
                   "response": {"loyalty_tier": "Silver"}}, stream="crm_users")
    assert members(gold) == {bob.pk}
    assert members(both) == set()
    assert changes(both) == [(ann.pk, "entry", "realtime"), (ann.pk, "exit", "realtime")]


def test_event_conditions_count_the_profiles_events(live: Account) -> None:
    cart = audience(live, "cart", text="FILTER EVENT added_to_cart WHERE(price >= 10) "
                                       "MIN 2 WITHIN 7")
    abandoned = audience(live, "abandoned", text="FILTER AND(EVENT added_to_cart WITHIN 7, "
                                                 "NOT EVENT purchased WITHIN 7)")
    process(live, track("v2", "added_to_cart", price=12))
    shopper = profile_of(live, "_uid", "v2")
    assert members(cart) == set()
    assert members(abandoned) == {shopper.pk}
    process(live, track("v2", "added_to_cart", price=5))
    assert members(cart) == set()  # the second one is too cheap
    process(live, track("v2", "added_to_cart", price=30))
    assert members(cart) == {shopper.pk}
    process(live, track("v2", "purchased", price=30))
    assert members(abandoned) == set()
    assert changes(abandoned) == [(shopper.pk, "entry", "realtime"),
                                  (shopper.pk, "exit", "realtime")]


def test_old_events_do_not_count(live: Account) -> None:
    abandoned = audience(live, "abandoned", text="FILTER EVENT added_to_cart WITHIN 7")
    process(live, track("v3", "added_to_cart", price=12),
            at=datetime.now(UTC) - timedelta(days=9))
    assert members(abandoned) == set()


def test_only_audiences_reading_what_changed_are_evaluated(live: Account) -> None:
    cuisine = audience(live, "cuisine", text='FILTER taxonomy = "cuisine"')
    gold = audience(live, "gold", text='FILTER loyalty_tier = "Gold"')
    process(live, page("v4", "cuisine"))
    visitor = profile_of(live, "_uid", "v4")
    # A stale row planted in "gold": a page view does not touch loyalty_tier, so the real-time
    # step must leave it alone (only the full computation corrects it).
    AudienceMembership.objects.create(account=live, audience=gold, profile=visitor)
    process(live, page("v4", "beaches"))
    assert members(cuisine) == set()
    assert members(gold) == {visitor.pk}
    membership.compute_audiences(live.pk, [gold.pk])
    assert members(gold) == set()
    assert changes(gold) == [(visitor.pk, "exit", "compute")]


def test_a_merge_moves_memberships_to_the_survivor(live: Account) -> None:
    cuisine = audience(live, "cuisine", text='FILTER taxonomy = "cuisine"')
    known = audience(live, "known", text="FILTER EXISTS email")
    process(live, page("v5", "cuisine"))
    process(live, {"type": "identify", "anonymousId": "v6", "traits": {"email": "d@x.com"}})
    anonymous = profile_of(live, "_uid", "v5")
    person = profile_of(live, "email", "d@x.com")
    assert members(cuisine) == {anonymous.pk}
    assert members(known) == {person.pk}
    # the visitor identifies: the two profiles merge
    process(live, {"type": "identify", "anonymousId": "v5", "traits": {"email": "d@x.com"}})
    survivor = profile_of(live, "email", "d@x.com")
    gone = ({anonymous.pk, person.pk} - {survivor.pk}).pop()
    assert members(cuisine) == {survivor.pk}
    assert members(known) == {survivor.pk}
    moved = changes(cuisine)[1:] + changes(known)[1:]
    assert all(cause == "merge" for _p, _k, cause in moved)
    assert (gone, "exit", "merge") in moved
    assert Audience.objects.get(pk=cuisine.pk).size == 1
    assert Audience.objects.get(pk=known.pk).size == 1


def test_a_new_profile_enters_negative_rules(live: Account) -> None:
    anonymous = audience(live, "anonymous", text="FILTER NOT EXISTS email")
    process(live, page("v7", "beaches"))
    assert members(anonymous) == {profile_of(live, "_uid", "v7").pk}


def test_edited_rules_are_used_at_once(live: Account) -> None:
    cuisine = audience(live, "cuisine", text='FILTER taxonomy = "cuisine"')
    process(live, page("v8", "cuisine"))
    editing.update_audience(cuisine, None, text='FILTER taxonomy = "beaches"', compute=False)
    process(live, page("v9", "beaches"))
    assert profile_of(live, "_uid", "v9").pk in members(cuisine)



def test_only_real_changes_are_recorded(live: Account) -> None:
    """An entry whose membership row is already there (a computation or another batch
    inserted it first) and an exit whose row is already gone write no change and move no
    size."""
    from audiences.realtime import Change, write_changes

    cuisine = audience(live, "cuisine", text='FILTER taxonomy = "cuisine"')
    process(live, page("v1", "Cuisine"))
    visitor = profile_of(live, "_uid", "v1")
    before = changes(cuisine)
    size = Audience.objects.get(pk=cuisine.pk).size
    now = datetime.now(UTC)
    written = write_changes(live.pk, [Change(cuisine.pk, visitor.pk, "entry", "realtime", None)],
                            now)
    assert written == []
    assert changes(cuisine) == before
    assert Audience.objects.get(pk=cuisine.pk).size == size
    AudienceMembership.objects.filter(audience=cuisine).delete()
    written = write_changes(live.pk, [Change(cuisine.pk, visitor.pk, "exit", "realtime", None)],
                            now)
    assert written == []
    assert changes(cuisine) == before
    # and a real one is recorded once
    written = write_changes(live.pk, [Change(cuisine.pk, visitor.pk, "entry", "realtime", None)],
                            now)
    assert [(c.profile_id, c.kind) for c in written] == [(visitor.pk, "entry")]
    assert changes(cuisine) == [*before, (visitor.pk, "entry", "realtime")]
    assert Audience.objects.get(pk=cuisine.pk).size == size + 1
