"""experiences.bandit_schedule: bandits reweighted on the schedule after their burn-in and at
their own interval (15 minutes at least), never before every arm has 100 visitors, no arm
below 1 %; the weights history kept, the version bumped and the decision config following."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone
from django_q.models import Schedule

from experiences import bandit_schedule, config, tasks
from experiences.models import BanditWeights, Experience, Phase
from tests.experiences.results_helpers import make_bandit, visitors
from tests.experiences.tracking_fixtures import ab_test

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_config() -> Any:
    config.invalidate()
    yield
    config.invalidate()


@pytest.fixture
def start() -> Any:
    return timezone.now() - timedelta(days=3)


@pytest.fixture
def bandit(account, start) -> Experience:
    return make_bandit(account, start, bandit_burn_in_hours=24, bandit_interval_minutes=60)


def reasons(outcomes) -> list[str]:
    return [o.reason for o in outcomes]


def test_nothing_happens_during_the_burn_in(bandit, start) -> None:
    visitors(bandit, "control", seen=300, converted=3)
    visitors(bandit, "bold", seen=300, converted=60)
    assert reasons(bandit_schedule.reweight_due(now=start + timedelta(hours=23))) == ["burn_in"]
    assert not BanditWeights.objects.exists()
    assert reasons(bandit_schedule.reweight_due(now=start + timedelta(hours=24))) == [
        "reweighted"]


def test_no_reweighting_before_every_arm_has_100_visitors(bandit, start) -> None:
    visitors(bandit, "control", seen=99, converted=1)
    visitors(bandit, "bold", seen=500, converted=100, assigned_only=50)
    [outcome] = bandit_schedule.reweight_due(now=start + timedelta(days=2))
    assert outcome.reason == "too_few_visitors" and outcome.arms == {
        "control": [99, 1], "bold": [500, 100]}
    assert not BanditWeights.objects.exists()
    assert config.active_config(bandit.account_id).get("button").weights == (0.5, 0.5)


def test_a_reweighting_is_stored_and_decisions_follow_it(bandit, start) -> None:
    visitors(bandit, "control", seen=200, converted=4)
    visitors(bandit, "bold", seen=200, converted=30)
    version = bandit.version
    before = config.active_config(bandit.account_id)
    now = start + timedelta(days=2)
    [outcome] = bandit_schedule.reweight_due(now=now)
    assert outcome.reweighted
    row = BanditWeights.objects.get(experience=bandit)
    assert (row.phase, row.at, row.arms) == (1, now, {"control": [200, 4], "bold": [200, 30]})
    assert row.weights["bold"] > 0.95 and sum(row.weights.values()) == pytest.approx(1)
    assert row.weights == outcome.weights
    bandit.refresh_from_db()
    assert bandit.version == version + 1
    live = config.active_config(bandit.account_id).get("button")
    assert live.weights == pytest.approx((row.weights["control"], row.weights["bold"]))
    assert config.active_config(bandit.account_id).etag != before.etag


def test_no_arm_falls_below_one_percent(bandit, start) -> None:
    visitors(bandit, "control", seen=2000, converted=0)
    visitors(bandit, "bold", seen=2000, converted=400)
    [outcome] = bandit_schedule.reweight_due(now=start + timedelta(days=2))
    assert outcome.weights["control"] == pytest.approx(0.01)
    assert outcome.weights["bold"] == pytest.approx(0.99)


def test_each_bandit_waits_for_its_own_interval(account, bandit, start) -> None:
    quick = make_bandit(account, start, key="quick", uid="q", bandit_burn_in_hours=0,
                        bandit_interval_minutes=5)  # below the minimum: 15 minutes
    for exp in (bandit, quick):
        visitors(exp, "control", seen=150, converted=5)
        visitors(exp, "bold", seen=150, converted=9)
    t = start + timedelta(days=1, hours=1)
    assert reasons(bandit_schedule.reweight_due(now=t)) == ["reweighted", "reweighted"]
    after = {minutes: reasons(bandit_schedule.reweight_due(now=t + timedelta(minutes=minutes)))
             for minutes in (10, 15, 45, 60)}
    # the 15-minute run reweights the quick bandit only; the hourly one after its hour
    assert after == {10: ["not_due", "not_due"], 15: ["not_due", "reweighted"],
                     45: ["not_due", "reweighted"], 60: ["reweighted", "reweighted"]}
    assert BanditWeights.objects.filter(experience=bandit).count() == 2
    assert BanditWeights.objects.filter(experience=quick).count() == 4


def test_a_minute_of_task_latency_does_not_skip_a_run(bandit, start) -> None:
    visitors(bandit, "control", seen=150, converted=5)
    visitors(bandit, "bold", seen=150, converted=9)
    t = start + timedelta(days=2, seconds=20)  # the previous run was 20 s late
    bandit_schedule.reweight_due(now=t)
    assert reasons(bandit_schedule.reweight_due(now=t + timedelta(minutes=59, seconds=45))) == [
        "reweighted"]


def test_only_active_bandits_are_reweighted(account, start) -> None:
    paused = make_bandit(account, start, key="paused", uid="p", status="paused")
    plain = ab_test(account, key="plain", uid="x")
    for exp in (paused, plain):
        visitors(exp, "control", seen=150, converted=5)
        visitors(exp, "bold", seen=150, converted=9)
    assert bandit_schedule.reweight_due(now=start + timedelta(days=2)) == []
    assert bandit_schedule.reweight(paused.pk).reason == "not_running"
    assert bandit_schedule.reweight(plain.pk).reason == "not_running"
    assert not BanditWeights.objects.exists()


def test_a_new_phase_starts_its_own_burn_in_and_history(bandit, start) -> None:
    visitors(bandit, "control", seen=150, converted=5)
    visitors(bandit, "bold", seen=150, converted=9)
    bandit_schedule.reweight_due(now=start + timedelta(days=2))
    Phase.objects.filter(experience=bandit).update(ended_at=start + timedelta(days=2))
    Phase.objects.create(account=bandit.account, experience=bandit, number=2,
                         started_at=start + timedelta(days=2, hours=1),
                         weights={"control": 0.5, "bold": 0.5}, variant_keys=["control", "bold"])
    Experience.objects.filter(pk=bandit.pk).update(phase=2)
    visitors(bandit, "control", seen=150, converted=5, phase=2)
    visitors(bandit, "bold", seen=150, converted=1, phase=2)
    assert reasons(bandit_schedule.reweight_due(now=start + timedelta(days=2, hours=5))) == [
        "burn_in"]
    [outcome] = bandit_schedule.reweight_due(now=start + timedelta(days=3, hours=2))
    assert outcome.arms == {"control": [150, 5], "bold": [150, 1]}
    assert list(BanditWeights.objects.order_by("at").values_list("phase", flat=True)) == [1, 2]


def test_the_task_and_its_schedule(bandit) -> None:
    visitors(bandit, "control", seen=150, converted=5)
    visitors(bandit, "bold", seen=150, converted=9)
    assert tasks.reweight_bandits() == 1  # now: three days after the phase started
    assert tasks.reweight_bandits() == 0  # not due again within the hour
    every = Schedule.objects.get(name="experiences.reweight_bandits")
    assert (every.func, every.schedule_type, every.minutes) == (
        "experiences.tasks.reweight_bandits", Schedule.MINUTES, 15)
    hourly = Schedule.objects.get(name="experiences.snapshot_results")
    assert (hourly.func, hourly.schedule_type) == ("experiences.tasks.snapshot_results",
                                                   Schedule.HOURLY)
    assert tasks.snapshot_results() == 1
