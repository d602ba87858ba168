"""Calculated attributes through the real pipeline: events stored by collect, processed by
the configured steps (profiles.calculated.attributes.compute among them), values read back."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from profiles.calculated import attributes as calculated
from profiles.models import AttributeValue
from profiles.schema.merge import stamp
from tests.profiles.calculated_helpers import (
    DAY,
    EXAMPLES,
    define,
    now,
    page,
    run,
    send_at,
    shop_schema,
    track,
    value_rows,
    values_of,
)
from tests.profiles.processing import profile_with

pytestmark = pytest.mark.django_db

ANN = {"email": "ann@example.com"}
BOB = {"email": "bob@example.com"}


@pytest.fixture
def shop(account):
    shop_schema(account)
    return account


def test_the_issues_examples(shop):
    for example in EXAMPLES:
        define(shop, **example)
    t = now()
    send_at(shop, t - 10 * DAY, page(ANN), track("order", ANN, revenue=1000),
            track("login", ANN), track("product viewed", ANN, product_id="old"))
    send_at(shop, t - 5 * DAY, page(ANN), page(ANN), track("order", ANN, revenue=19.99),
            track("login", ANN))
    send_at(shop, t - 2 * DAY, page(ANN), track("order", ANN, revenue=5),
            track("product viewed", ANN, product_id="p-2"),
            track("product viewed", ANN, product_id="p-1"),
            track("product viewed", ANN, product_id="p-1"))
    send_at(shop, t - 1 * DAY, track("login", ANN), page(BOB))
    run(shop)
    ann = values_of(shop, "ann@example.com")
    last_login = profile_with(shop, "ann@example.com").events.filter(event="login") \
        .order_by("-at").first().at
    assert ann == {
        "1_week_page_views": 3,  # the one ten days ago is outside the week
        "90_day_revenue": 1024.99,  # all three orders (exact decimal sum)
        "last_7_days_login": stamp(last_login),
        "most_viewed_product": "p-1",  # "old" is outside the 3 days
    }
    assert values_of(shop, "bob@example.com") == {"1_week_page_views": 1}


@pytest.mark.parametrize(("aggregate", "prop", "expected"), [
    ("count", "", 4),
    ("sum", "revenue", 42.5),
    ("avg", "revenue", 14.166666666666666),
    ("min", "revenue", 2.5),
    ("max", "revenue", 30),
    ("distinct", "product_id", 2),
    ("most_frequent", "product_id", "b"),
])
def test_each_aggregate(shop, aggregate, prop, expected):
    define(shop, name="attr", aggregate=aggregate, event="order", property=prop, window_days=30)
    t = now() - 3 * DAY
    send_at(shop, t, track("order", ANN, revenue=10, product_id="a"),
            track("order", ANN, revenue=2.5, product_id="b"),
            track("order", ANN, revenue=30, product_id="B"),  # another value: case is kept
            track("order", ANN, product_id="b"),  # no revenue: not in sum/avg/min/max
            track("refund", ANN, revenue=999, product_id="b"))  # another event
    run(shop)
    value = values_of(shop, "ann@example.com")["attr"]
    if aggregate == "distinct":
        expected = 3  # a, b, B
    assert value == expected


def test_first_and_last_times(shop):
    define(shop, name="first_order", aggregate="first", event="order", window_days=30)
    define(shop, name="last_order", aggregate="last", event="order", window_days=30)
    t = now() - 4 * DAY
    send_at(shop, t, track("order", ANN), track("order", ANN), track("order", ANN))
    run(shop)
    times = sorted(profile_with(shop, "ann@example.com").events.values_list("at", flat=True))
    assert values_of(shop, "ann@example.com") == {"first_order": stamp(times[0]),
                                                  "last_order": stamp(times[-1])}


def test_where_uses_the_audience_property_semantics(shop):
    define(shop, name="usd_revenue", aggregate="sum", event="order", property="revenue",
           window_days=30, where=[{"property": "currency", "op": "=", "value": "usd"},
                                  {"property": "revenue", "op": ">=", "value": 10}])
    define(shop, name="orders_without_coupon", aggregate="count", event="order",
           window_days=30, where=[{"property": "coupon", "op": "!=", "value": True}])
    send_at(shop, now() - DAY,
            track("order", ANN, revenue=15, currency="USD"),  # case-insensitive match
            track("order", ANN, revenue=5, currency="usd"),  # below 10
            track("order", ANN, revenue=100, currency="EUR", coupon=True),
            track("order", ANN, revenue=7, currency="usd", coupon=False))
    run(shop)
    assert values_of(shop, "ann@example.com") == {"usd_revenue": 15,
                                                  "orders_without_coupon": 3}


def test_late_events_give_the_same_values_as_in_order(account, other_account):
    """Values and states depend on the events, not on the order they arrive in."""
    t = now() - 6 * DAY
    events = [(t + i * DAY / 3, track("order", ANN, revenue=r, product_id=p))
              for i, (r, p) in enumerate([(1.1, "x"), (2.2, "y"), (3.3, "y"), (4.4, "x"),
                                          (5.5, "z"), (0.1, "x")])]
    results = []
    for target, order in ((account, events), (other_account, list(reversed(events)))):
        shop_schema(target)
        for aggregate, prop in (("sum", "revenue"), ("avg", "revenue"), ("min", "revenue"),
                                ("max", "revenue"), ("distinct", "product_id"),
                                ("most_frequent", "product_id"), ("first", ""),
                                ("last", ""), ("count", "")):
            define(target, name=aggregate, aggregate=aggregate, event="order", property=prop,
                   window_days=7)
        for at, message in order:  # one batch each: the late ones come after newer ones
            send_at(target, at, message)
            run(target)
        results.append((values_of(target, "ann@example.com"),
                        sorted((v.name, v.state["d"]) for v in AttributeValue.objects.filter(
                            account=target))))
    assert results[0] == results[1]
    values = results[0][0]
    assert values["sum"] == float(Decimal("16.6"))
    assert values["min"] == 0.1 and values["max"] == 5.5 and values["most_frequent"] == "x"


def test_events_older_than_the_window_do_not_count(shop):
    define(shop, name="week_orders", aggregate="count", event="order", window_days=7)
    send_at(shop, now() - 8 * DAY, track("order", ANN))
    run(shop)
    assert values_of(shop, "ann@example.com") == {}
    assert not AttributeValue.objects.filter(account=shop).exists()


def test_merge_folds_the_merged_away_values_into_the_survivor(shop):
    define(shop, name="views", aggregate="count", event="page", window_days=7)
    define(shop, name="products", aggregate="distinct", event="product viewed",
           property="product_id", window_days=7)
    t = now() - 2 * DAY
    send_at(shop, t, page({"_uid": "cookie-1"}), page({"_uid": "cookie-1"}),
            track("product viewed", {"_uid": "cookie-1"}, product_id="a"))
    send_at(shop, t - DAY, page(ANN), track("product viewed", ANN, product_id="b"),
            track("product viewed", ANN, product_id="a"))
    run(shop)
    anon = profile_with(shop, "cookie-1")
    assert calculated.profile_attributes(shop.pk, anon.pk) == {"views": 2, "products": 1}
    send_at(shop, t + DAY, page({**ANN, "_uid": "cookie-1"}))  # links the two: a merge
    run(shop)
    survivor = profile_with(shop, "ann@example.com")
    assert profile_with(shop, "cookie-1") == survivor
    assert calculated.profile_attributes(shop.pk, survivor.pk) == {"views": 4, "products": 2}
    assert set(AttributeValue.objects.filter(account=shop).values_list("profile_id", flat=True)
               ) == {survivor.pk}


def test_changed_attributes_are_reported_to_later_steps(shop):
    seen = []

    def spy(batch):
        seen.append(batch.changed_attributes)

    from profiles.processing.pipeline import pipeline_steps, process_batch

    define(shop, name="views", aggregate="count", event="page", window_days=7)
    define(shop, name="orders", aggregate="count", event="order", window_days=7)
    send_at(shop, now() - DAY, page(ANN), page(BOB), track("signup", BOB))
    process_batch(shop.pk, steps=[*pipeline_steps(), spy])
    ann, bob = (profile_with(shop, e).pk for e in ("ann@example.com", "bob@example.com"))
    assert seen == [{ann: {"views"}, bob: {"views"}}]


def test_the_correction_slides_the_window(shop):
    define(shop, name="views", aggregate="count", event="page", window_days=3)
    define(shop, name="last_view", aggregate="last", event="page", window_days=3)
    t = now()
    send_at(shop, t - 2 * DAY, page(ANN))
    send_at(shop, t, page(ANN))
    run(shop)
    pid = profile_with(shop, "ann@example.com").pk
    assert calculated.profile_attributes(shop.pk, pid)["views"] == 2
    value = AttributeValue.objects.get(account=shop, name="views")
    oldest_day = (t - 2 * DAY).date()
    assert value.expires_at.date() == oldest_day + timedelta(days=3)
    assert value.expires_at.hour == 0
    # before the oldest day leaves, nothing changes
    assert calculated.correct_expired(shop.pk, now=value.expires_at - timedelta(seconds=1)) \
        == {}
    changed = calculated.correct_expired(shop.pk, now=value.expires_at)
    assert changed == {pid: {"views"}}  # the last view is still the same one
    assert calculated.profile_attributes(shop.pk, pid)["views"] == 1
    later = t + 3 * DAY
    changed = calculated.correct_expired(shop.pk, now=later)
    assert changed == {pid: {"views", "last_view"}}
    assert calculated.profile_attributes(shop.pk, pid) == {}
    assert not AttributeValue.objects.filter(account=shop).exists()


def test_correction_is_scoped_to_its_account(account, other_account):
    for target in (account, other_account):
        shop_schema(target)
        # two days: a one-day window over an event sent in the half hour after midnight has
        # already expired at midnight (values expire at day boundaries)
        define(target, name="views", aggregate="count", event="page", window_days=2)
        send_at(target, now() - DAY / 48, page(ANN))
        run(target)
    calculated.correct_expired(account.pk, now=now() + 3 * DAY)
    assert not AttributeValue.objects.filter(account=account).exists()
    assert AttributeValue.objects.filter(account=other_account).count() == 1


def test_inactive_attributes_are_not_computed_or_shown(shop):
    attr = define(shop, name="views", aggregate="count", event="page", window_days=7)
    send_at(shop, now() - DAY, page(ANN))
    run(shop)
    calculated.save_attribute(shop, {"active": False}, instance=attr)
    send_at(shop, now() - DAY, page(ANN))
    run(shop)
    assert values_of(shop, "ann@example.com") == {}
    assert [v for _n, _p, v in value_rows(shop)] == [1]  # kept, not updated
