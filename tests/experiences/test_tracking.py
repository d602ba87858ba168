"""experiences.tracking: impressions counted once per visitor and experience, impressions of
a variant the visitor was not given ignored and counted as a data-quality warning, and
conversions: goal events within 30 days of the first impression, attributed to the assigned
variant, once per visitor plus an all-conversions count; through the real pipeline."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from audiences.models import Audience
from cdp_site.models import Account
from experiences import config, tracking
from experiences.models import Conversion, DataQualityWarning, Experience, Impression
from profiles.processing.rebuild import start_rebuild
from profiles.schema.lytics import install_lytics_schema
from tests.experiences.tracking_fixtures import ab_test, assigned, other_variant, visitor_with
from tests.profiles.processing import T0, run, send

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_config() -> Any:
    config.invalidate()
    yield
    config.invalidate()


@pytest.fixture
def hero(account: Account) -> Experience:
    install_lytics_schema(account)
    return ab_test(account, where=[{"property": "price", "op": ">", "value": 0}])


def viewed(visitor: str, experience: str, variant: str, **extra: Any) -> dict[str, Any]:
    """What strata.js' impression() sends (Segment's "Experiment Viewed")."""
    return {"type": "track", "event": "Experiment Viewed", "anonymousId": visitor,
            "properties": {"experiment_id": experience, "variation_id": variant, **extra}}


def booked(visitor: str, price: float = 20.0, **extra: Any) -> dict[str, Any]:
    return {"type": "track", "event": "booked", "anonymousId": visitor,
            "properties": {"price": price, **extra}}


def warnings(exp: Experience, code: str) -> int:
    row = DataQualityWarning.objects.filter(experience=exp, code=code).first()
    return row.count if row else 0


# --------------------------------------------------------------------------- impressions


def test_an_impression_is_counted_once_per_visitor_and_experience(account, hero) -> None:
    variant, uid = assigned(account, "v-1")
    assert tracking.record_impression(account.pk, "hero", variant, "v-1", T0) == "counted"
    assert tracking.record_impression(account.pk, "a", uid, "v-1",
                                      T0 + timedelta(hours=1)) == "repeat"
    assert tracking.record_impression(account.pk, "hero", variant, "v-1",
                                      T0 - timedelta(hours=1)) == "repeat"
    [row] = Impression.objects.filter(experience=hero)
    assert (row.visitor, row.variant.key, row.phase, row.count) == ("v-1", variant, 1, 3)
    assert row.first_at == T0 - timedelta(hours=1) and row.last_at == T0 + timedelta(hours=1)
    assert warnings(hero, tracking.WARN_IMPRESSION) == 0


def test_an_impression_of_a_variant_not_given_is_ignored_and_counted_as_a_warning(
        account, hero) -> None:
    variant, _uid = assigned(account, "v-1")
    wrong = other_variant(account, "hero", variant)
    assert tracking.record_impression(account.pk, "hero", wrong.key, "v-1") == \
        "ignored_not_assigned"
    assert tracking.record_impression(account.pk, "hero", "no-such-variant", "v-1") == \
        "ignored_not_assigned"
    # a visitor never decided for was given nothing
    assert tracking.record_impression(account.pk, "hero", variant, "stranger") == \
        "ignored_not_assigned"
    assert not Impression.objects.filter(experience=hero).exists()
    warning = DataQualityWarning.objects.get(experience=hero, code="impression_not_assigned")
    assert warning.count == 3
    assert warning.sample["visitor"] == "stranger"
    # the right variant still counts afterwards
    assert tracking.record_impression(account.pk, "hero", variant, "v-1") == "counted"


def test_impressions_of_unknown_or_stopped_experiences_change_nothing(account, hero) -> None:
    variant, _uid = assigned(account, "v-1")
    assert tracking.record_impression(account.pk, "nope", variant, "v-1") == \
        "unknown_experience"
    Experience.objects.filter(pk=hero.pk).update(status="paused", version=2)
    config.invalidate(account.pk)
    assert tracking.record_impression(account.pk, "hero", variant, "v-1") == \
        "ignored_not_running"
    assert not Impression.objects.exists() and not DataQualityWarning.objects.exists()


def test_impressions_are_scoped_to_the_account(account, hero) -> None:
    other = Account.objects.create(name="Other", slug="other")
    ab_test(other)
    variant, _uid = assigned(account, "v-1")
    assert tracking.record_impression(other.pk, "hero", variant, "v-1") == \
        "ignored_not_assigned"
    assert not Impression.objects.filter(experience=hero).exists()


def test_a_segmented_experience_counts_impressions_of_its_variants(account) -> None:
    install_lytics_schema(account)
    cuisine = Audience.objects.create(account=account, slug="cuisine", name="Cuisine",
                                      rule={"field": "taxonomy", "op": "=", "value": "cuisine"},
                                      api_accessible=True)
    exp = ab_test(account, "banner", "s", variants=("base", "cuisine"), type="segmented",
                  audiences={"cuisine": cuisine})
    assert tracking.record_impression(account.pk, "banner", "cuisine", "v-9") == "counted"
    assert tracking.record_impression(account.pk, "banner", "nope", "v-9") == \
        "ignored_not_assigned"
    assert Impression.objects.get(experience=exp).variant.key == "cuisine"


# --------------------------------------------------------------------------- the pipeline step


def test_tag_impressions_and_conversions_through_the_pipeline(account, hero) -> None:
    bold = visitor_with(account, "bold", "b")
    control = visitor_with(account, "control", "c")
    send(account, viewed(bold, "hero", "bold"), viewed(bold, "hero", "bold"),
         viewed(control, "a", "0"), at=T0)
    run(account)
    rows = {r.visitor: r for r in Impression.objects.filter(experience=hero)}
    assert {v: (r.variant.key, r.count) for v, r in rows.items()} == {
        bold: ("bold", 2), control: ("control", 1)}
    assert rows[bold].profile_id is not None  # the event's profile

    # bold converts twice within 30 days: one conversion, counted twice; control once
    send(account, booked(bold), booked(bold, 35.0), booked(control),
         at=T0 + timedelta(days=2))
    run(account)
    by_visitor = {c.visitor: c for c in Conversion.objects.filter(experience=hero)}
    assert {v: (c.variant.key, c.phase, c.count) for v, c in by_visitor.items()} == {
        bold: ("bold", 1, 2), control: ("control", 1, 1)}
    assert by_visitor[bold].first_at == T0 + timedelta(days=2)
    assert by_visitor[bold].raw_event_id is not None


def test_conversions_only_within_30_days_after_the_first_impression(account, hero) -> None:
    early = visitor_with(account, "bold", "e")
    late = visitor_with(account, "bold", "l")
    before = visitor_with(account, "bold", "p")
    send(account, viewed(early, "hero", "bold"), viewed(late, "hero", "bold"), at=T0)
    send(account, viewed(before, "hero", "bold"), at=T0 + timedelta(days=5))
    run(account)
    send(account, booked(early), at=T0 + timedelta(days=29, hours=23))
    send(account, booked(late), at=T0 + timedelta(days=30, minutes=1))
    send(account, booked(before), at=T0 + timedelta(days=1))  # before its impression
    run(account)
    assert list(Conversion.objects.filter(experience=hero).values_list("visitor", flat=True)) \
        == [early]


def test_a_goal_event_without_an_impression_is_not_a_conversion(account, hero) -> None:
    given = visitor_with(account, "bold", "g")  # assigned, but never saw it
    send(account, booked(given), booked("never-assigned"), at=T0)
    run(account)
    assert not Conversion.objects.exists()
    assert warnings(hero, "conversion_without_impression") == 1  # only the assigned one


def test_goal_conditions_and_stream(account) -> None:
    install_lytics_schema(account)
    exp = ab_test(account, where=[{"property": "price", "op": ">", "value": 0}],
                  goal_stream="web")
    visitor = visitor_with(account, "bold", "s")
    send(account, viewed(visitor, "hero", "bold"), at=T0)
    run(account)
    send(account, booked(visitor, 0.0), {**booked(visitor), "event": "booked-not"},
         at=T0 + timedelta(hours=1))
    send(account, booked(visitor), stream="default", at=T0 + timedelta(hours=1))
    run(account)
    assert not Conversion.objects.filter(experience=exp).exists()
    send(account, booked(visitor, 5.0), at=T0 + timedelta(hours=2))
    run(account)
    assert Conversion.objects.get(experience=exp).count == 1


def test_a_conversion_follows_the_visitor_by_profile(account, hero) -> None:
    """The impression came from one cookie; the goal event from another cookie of the same
    person (an email joins them): the conversion is the first cookie's."""
    cookie = visitor_with(account, "bold", "x")
    send(account, viewed(cookie, "hero", "bold"),
         {"type": "identify", "anonymousId": cookie, "traits": {"email": "a@example.com"}},
         at=T0)
    run(account)
    send(account, {"type": "identify", "anonymousId": "phone",
                   "traits": {"email": "a@example.com"}},
         booked("phone"), at=T0 + timedelta(days=1))
    run(account)
    [conversion] = Conversion.objects.filter(experience=hero)
    assert (conversion.visitor, conversion.variant.key) == (cookie, "bold")


def test_a_rebuild_does_not_count_impressions_and_conversions_again(account, hero) -> None:
    visitor = visitor_with(account, "bold", "r")
    send(account, viewed(visitor, "hero", "bold"), at=T0)
    send(account, booked(visitor), at=T0 + timedelta(days=1))
    run(account)
    start_rebuild(account)
    run(account)
    assert Impression.objects.get(experience=hero).count == 1
    assert Conversion.objects.get(experience=hero).count == 1


def test_a_batch_costs_the_same_queries_whatever_its_size(account, hero) -> None:
    def queries(n: int, prefix: str) -> int:
        visitors = [visitor_with(account, "bold", f"{prefix}{i}") for i in range(n)]
        send(account, *[viewed(v, "hero", "bold") for v in visitors], at=T0)
        send(account, *[booked(v) for v in visitors], at=T0 + timedelta(days=1))
        config.invalidate(account.pk)  # both runs build the snapshot once
        with CaptureQueriesContext(connection) as ctx:
            run(account)
        # this step's statements (other steps cache what they read between runs)
        return sum(1 for q in ctx.captured_queries
                   if "experiences_" in q["sql"] or "profilerebuild" in q["sql"])

    few, many = queries(2, "q"), queries(12, "w")
    assert many == few
    assert Conversion.objects.filter(experience=hero).count() == 14


def test_follow_visitor_moves_assignments_impressions_and_conversions(account, hero) -> None:
    variant, _uid = assigned(account, "old")
    tracking.record_impression(account.pk, "hero", variant, "old", T0)
    tracking.record_conversions(account.pk, [tracking.GoalEvent(
        "booked", {"price": 3}, "web", T0 + timedelta(hours=1), ("old",))])
    tracking.follow_visitor(account.pk, "old", "new")
    assert hero.assignments.get().visitor == "new"
    assert Impression.objects.get(experience=hero).visitor == "new"
    assert Conversion.objects.get(experience=hero).visitor == "new"
    # "new" keeps its variant, and its impression is a repeat
    assert tracking.record_impression(account.pk, "hero", variant, "new") == "repeat"
