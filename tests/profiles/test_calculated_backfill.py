"""A new or changed calculated attribute is computed from the profile events already stored,
in the background (django-q2, run synchronously here), with its status and progress."""

from __future__ import annotations

import pytest
from django_q.conf import Conf
from django_q.models import Schedule, Task

from profiles.calculated import attributes as calculated
from profiles.models import AttributeValue, CalculatedAttribute
from tests.profiles.calculated_helpers import (
    DAY,
    define,
    now,
    page,
    run,
    send_at,
    shop_schema,
    track,
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


@pytest.fixture
def q_sync(monkeypatch):
    """django-q2 runs queued tasks at once, in this process (its sync mode)."""
    monkeypatch.setattr(Conf, "SYNC", True)


def _history(account):
    t = now()
    send_at(account, t - 40 * DAY, track("order", ANN, revenue=500))
    send_at(account, t - 20 * DAY, track("order", ANN, revenue=20), track("order", BOB,
                                                                           revenue=7))
    send_at(account, t - 2 * DAY, track("order", ANN, revenue=1.5), page(ANN))
    run(account)


def test_a_new_attribute_is_backfilled_in_the_background(shop, q_sync,
                                                         django_capture_on_commit_callbacks):
    _history(shop)
    with django_capture_on_commit_callbacks(execute=True):
        attr = define(shop, name="30_day_revenue", aggregate="sum", event="order",
                      property="revenue", window_days=30)
        assert attr.status == "pending"
    attr.refresh_from_db()
    assert (attr.status, attr.progress, attr.error) == ("ready", 1.0, "")
    assert attr.backfill_finished_at >= attr.backfill_started_at
    assert Task.objects.filter(func="profiles.tasks.backfill_calculated_attribute").count() == 1
    assert values_of(shop, "ann@example.com") == {"30_day_revenue": 21.5}
    assert values_of(shop, "bob@example.com") == {"30_day_revenue": 7}
    # and it goes on incrementally from there
    send_at(shop, now(), track("order", BOB, revenue=3))
    run(shop)
    assert values_of(shop, "bob@example.com") == {"30_day_revenue": 10}


def test_backfill_and_incremental_agree(shop, other_account):
    """The same events give the same values and states, counted as they arrive or
    recomputed later from the timeline."""
    shop_schema(other_account)
    for target in (shop, other_account):
        if target == other_account:
            define(target, name="revenue_sum", aggregate="sum", event="order",
                   property="revenue", window_days=30)
        _history(target)
    late = define(shop, name="revenue_sum", aggregate="sum", event="order",
                  property="revenue", window_days=30)
    assert calculated.backfill(late.pk, late.revision) == "ready"

    def snapshot(account):
        return sorted((v.name, v.value, v.state["d"], v.expires_at) for v in
                      AttributeValue.objects.filter(account=account))
    assert snapshot(shop) == snapshot(other_account)
    assert len(snapshot(shop)) == 2


def test_an_edited_definition_is_recomputed_and_old_values_dropped(shop):
    _history(shop)
    attr = define(shop, name="orders", aggregate="count", event="order", window_days=30)
    calculated.backfill(attr.pk, attr.revision)
    assert values_of(shop, "bob@example.com") == {"orders": 1}
    attr = calculated.save_attribute(shop, {"window_days": 7}, instance=attr)
    assert (attr.revision, attr.status) == (2, "pending")
    assert calculated.backfill(attr.pk, 1) == "superseded"  # the old job stops
    assert calculated.backfill(attr.pk, 2) == "ready"
    assert values_of(shop, "ann@example.com") == {"orders": 1}
    assert values_of(shop, "bob@example.com") == {}  # his order is 20 days old
    assert AttributeValue.objects.filter(attribute=attr).count() == 1


def test_a_rename_keeps_the_values(shop):
    _history(shop)
    attr = define(shop, name="orders", aggregate="count", event="order", window_days=30)
    calculated.backfill(attr.pk, attr.revision)
    attr = calculated.save_attribute(shop, {"name": "month_orders"}, instance=attr)
    assert attr.revision == 1
    assert values_of(shop, "ann@example.com") == {"month_orders": 2}


def test_events_processed_during_the_backfill_are_not_lost(shop):
    """An attribute defined while events keep coming: the pipeline counts new events into
    values the backfill has already written, and the backfill's recompute includes the
    events processed before it reached a profile."""
    _history(shop)
    attr = define(shop, name="orders", aggregate="count", event="order", window_days=30)
    send_at(shop, now(), track("order", ANN))  # processed before the backfill runs
    run(shop)
    assert calculated.backfill(attr.pk, attr.revision) == "ready"
    send_at(shop, now(), track("order", ANN))  # after it
    run(shop)
    assert values_of(shop, "ann@example.com") == {"orders": 4}


def test_a_failing_backfill_is_visible(shop, monkeypatch):
    _history(shop)
    attr = define(shop, name="orders", aggregate="count", event="order", window_days=30)

    def broken(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(calculated, "_recompute_profiles", broken)
    assert calculated.backfill(attr.pk, attr.revision) == "failed"
    attr.refresh_from_db()
    assert attr.status == "failed" and "disk on fire" in attr.error


def test_the_correction_is_scheduled():
    schedule = Schedule.objects.get(name="profiles.correct_calculated_attributes")
    assert (schedule.func, schedule.schedule_type, schedule.minutes) == (
        "profiles.tasks.correct_calculated_attributes", "I", 15)


def test_the_scheduled_task_corrects_every_account(shop):
    from profiles import tasks

    define(shop, name="views", aggregate="count", event="page", window_days=1)
    send_at(shop, now() - DAY / 100, page(ANN))
    run(shop)
    assert values_of(shop, "ann@example.com") == {"views": 1}
    AttributeValue.objects.filter(account=shop).update(expires_at=now() - DAY)
    # a state whose day is still in the window keeps its value; only expires_at is renewed
    assert tasks.correct_calculated_attributes() == 0
    value = AttributeValue.objects.get(account=shop)
    assert value.expires_at > now()
    attr = CalculatedAttribute.objects.get(account=shop)
    assert attr.computed_at is not None
    assert profile_with(shop, "ann@example.com").pk == value.profile_id
