"""experiences.results: per phase and variant visitors, impressions, conversions and rate;
comparisons against control as gbstats computes them; SRM (bandits held to each period's
split); visibility and winner thresholds (per account); snapshots and the charts over time."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from experiences import config, results
from experiences.models import (
    BanditWeights,
    DataQualityWarning,
    Experience,
    ExperienceGoal,
    Goal,
    Phase,
    ResultSnapshot,
)
from tests.conftest import make_account
from tests.experiences.gbstats_reference import gbstats_dimension
from tests.experiences.results_helpers import visitors
from tests.experiences.tracking_fixtures import ab_test

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_config() -> Any:
    config.invalidate()
    yield
    config.invalidate()


@pytest.fixture
def hero(account) -> Experience:
    return ab_test(account)


def started(exp: Experience, days: float) -> None:
    Phase.objects.filter(experience=exp, number=exp.phase).update(
        started_at=timezone.now() - timedelta(days=days))


def rows(answer: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {row["key"]: row for row in answer["variants"]}


# --------------------------------------------------------------------------- counting


def test_counts_per_variant_and_goal(account, hero) -> None:
    signup = Goal.objects.create(account=account, key="signup", name="Sign-up", event="signup")
    ExperienceGoal.objects.create(account=account, experience=hero, goal=signup)
    visitors(hero, "control", seen=40, converted=4, assigned_only=10, repeat=3)
    visitors(hero, "bold", seen=50, converted=10, conversions_each=2)
    visitors(hero, "bold", seen=0, converted=0, assigned_only=5)
    names = visitors(hero, "bold", seen=5, converted=2, goal=signup)

    answer = results.phase_results(hero)
    control, bold = answer["variants"]
    assert (control["key"], bold["key"]) == ("control", "bold")  # control first
    assert control["visitors"] == 50 and control["impressions"] == {"visitors": 40, "total": 120}
    assert control["primary"] == {"visitors": 4, "total": 4, "rate": 0.1}
    assert bold["visitors"] == 60 and bold["impressions"] == {"visitors": 55, "total": 55}
    assert bold["primary"] == {"visitors": 10, "total": 20, "rate": 10 / 55}
    assert bold["conversions"] == {"booked-hero": {"visitors": 10, "total": 20},
                                   "signup": {"visitors": 2, "total": 2}}
    assert answer["primary_goal"] == "booked-hero"
    assert [g["key"] for g in answer["goals"]] == ["booked-hero", "signup"]
    assert len(names) == 5


def test_the_control_is_the_base_variant_wherever_it_sits(account) -> None:
    exp = ab_test(account, variants=("a", "b", "c"))
    exp.variants.filter(key="a").update(is_base=False, position=2)
    exp.variants.filter(key="c").update(is_base=True, position=0)
    assert [row["key"] for row in results.phase_results(exp)["variants"]] == ["c", "b", "a"]


def test_phases_are_counted_apart(account, hero) -> None:
    visitors(hero, "control", seen=30, converted=3, phase=1)
    Phase.objects.filter(experience=hero).update(ended_at=timezone.now())
    Phase.objects.create(account=account, experience=hero, number=2,
                         weights={"control": 0.5, "bold": 0.5}, variant_keys=["control", "bold"])
    Experience.objects.filter(pk=hero.pk).update(phase=2)
    hero.refresh_from_db()
    visitors(hero, "control", seen=7, converted=1)
    assert rows(results.phase_results(hero))["control"]["impressions"]["visitors"] == 7
    assert rows(results.phase_results(hero, 1))["control"]["impressions"]["visitors"] == 30
    assert results.phase_results(hero, 3) is None


def test_another_accounts_rows_do_not_count(account, hero) -> None:
    other = ab_test(make_account("Globex"))
    visitors(other, "control", seen=20, converted=5)
    visitors(hero, "control", seen=3)
    assert rows(results.phase_results(hero))["control"]["impressions"]["visitors"] == 3
    assert results.overview(account.pk, [hero])[hero.pk]["visitors"] == 3


def test_counting_costs_the_same_queries_whatever_the_traffic(account, hero) -> None:
    visitors(hero, "control", seen=5, converted=1)
    with CaptureQueriesContext(connection) as small:
        results.phase_results(hero)
    visitors(hero, "control", seen=2000, converted=100)
    visitors(hero, "bold", seen=2000, converted=150)
    with CaptureQueriesContext(connection) as big:
        results.phase_results(hero)
    assert len(big.captured_queries) == len(small.captured_queries) <= 8


# --------------------------------------------------------------------------- statistics


def test_comparisons_match_gbstats(account, hero) -> None:
    visitors(hero, "control", seen=1200, converted=48)
    visitors(hero, "bold", seen=1180, converted=71)
    answer = results.phase_results(hero)
    control, bold = answer["variants"]
    bayes = gbstats_dimension([(1200, 48), (1180, 71)], [0.5, 0.5], "bayesian")
    freq = gbstats_dimension([(1200, 48), (1180, 71)], [0.5, 0.5], "frequentist")
    b, f = bayes["variations"][1], freq["variations"][1]
    assert bold["bayesian"]["chance_to_beat_control"] == pytest.approx(b["chanceToWin"],
                                                                       abs=1e-4)
    assert bold["bayesian"]["uplift"] == pytest.approx(b["expected"], abs=1e-4)
    assert bold["bayesian"]["credible_interval"] == pytest.approx(b["ci"], abs=1e-4)
    assert [bold["bayesian"]["risk_control"], bold["bayesian"]["risk_variant"]] == \
        pytest.approx(b["risk"], abs=1e-4)
    assert bold["frequentist"]["p_value"] == pytest.approx(f["pValue"], abs=1e-4)
    assert bold["frequentist"]["confidence_interval"] == pytest.approx(f["ci"], abs=1e-4)
    assert control["bayesian"] is None
    assert control["chance_to_be_best"] + bold["chance_to_be_best"] == pytest.approx(1)
    assert bold["chance_to_be_best"] > 0.95
    assert answer["srm"]["p_value"] == pytest.approx(bayes["srm"], abs=1e-4)
    assert not answer["srm"]["mismatch"]


def test_results_show_once_a_variant_has_enough_impressions_or_conversions(account,
                                                                           hero) -> None:
    visitors(hero, "control", seen=999, converted=29)
    visitors(hero, "bold", seen=400, converted=30)
    answer = results.phase_results(hero)
    assert [r["visible"] for r in answer["variants"]] == [False, True]
    assert not answer["visible"]
    visitors(hero, "control", seen=1)
    answer = results.phase_results(hero)
    assert [r["visible"] for r in answer["variants"]] == [True, True] and answer["visible"]


def test_a_winner_is_suggested_after_14_days_at_95_percent(account, hero) -> None:
    visitors(hero, "control", seen=1500, converted=45)
    visitors(hero, "bold", seen=1500, converted=90)
    started(hero, 3)
    assert results.phase_results(hero)["winner"] == {"variant": None, "reason": "too_early"}
    started(hero, 14.5)
    answer = results.phase_results(hero)
    assert answer["winner"] == {"variant": "bold", "reason": "winner"}
    assert answer["days_running"] == pytest.approx(14.5, abs=0.01)


def test_no_winner_without_a_clear_leader(account, hero) -> None:
    visitors(hero, "control", seen=1500, converted=60)
    visitors(hero, "bold", seen=1500, converted=63)
    started(hero, 20)
    assert results.phase_results(hero)["winner"]["reason"] == "no_clear_winner"


def test_thresholds_per_account(account, hero, settings) -> None:
    visitors(hero, "control", seen=200, converted=6)
    visitors(hero, "bold", seen=200, converted=20)
    started(hero, 3)
    answer = results.phase_results(hero)
    assert not answer["visible"] and answer["winner"]["reason"] == "not_enough_data"
    settings.STRATA_RESULTS_ACCOUNTS = {account.slug: {"min_impressions": 150, "min_days": 2}}
    answer = results.phase_results(hero)
    assert answer["visible"] and answer["winner"] == {"variant": "bold", "reason": "winner"}
    assert answer["thresholds"] == {"min_impressions": 150, "min_conversions": 30,
                                    "winner_chance": 0.95, "min_days": 2.0}
    settings.STRATA_RESULTS_ACCOUNTS = {"someone-else": {"min_impressions": 1}}
    settings.STRATA_RESULTS_WINNER_CHANCE = 0.99
    assert results.thresholds(account) == results.Thresholds(winner_chance=0.99)


def test_a_sample_ratio_mismatch_is_flagged_and_recorded_by_a_snapshot(account, hero) -> None:
    visitors(hero, "control", seen=1000, converted=40)
    visitors(hero, "bold", seen=1250, converted=50)
    answer = results.phase_results(hero)
    assert answer["srm"]["mismatch"] and answer["srm"]["p_value"] < 0.001
    assert answer["winner"]["reason"] == "sample_ratio_mismatch"
    results.snapshot(hero)
    results.snapshot(hero)
    warning = DataQualityWarning.objects.get(experience=hero, code="sample_ratio_mismatch")
    assert warning.count == 2 and warning.sample["users"] == [1000, 1250]
    assert results.phase_results(hero)["warnings"][0]["code"] == "sample_ratio_mismatch"


def test_a_bandits_srm_follows_the_split_of_each_period(account) -> None:
    exp = ab_test(account, key="btn")
    Experience.objects.filter(pk=exp.pk).update(distribution="bandit")
    exp.refresh_from_db()
    start = timezone.now() - timedelta(days=2)
    Phase.objects.filter(experience=exp).update(started_at=start)
    reweighted = start + timedelta(days=1)
    BanditWeights.objects.create(account=account, experience=exp, phase=1, at=reweighted,
                                 weights={"control": 0.2, "bold": 0.8})
    visitors(exp, "control", seen=500, at=start + timedelta(hours=1))
    visitors(exp, "bold", seen=500, at=start + timedelta(hours=1))
    visitors(exp, "control", seen=200, at=reweighted + timedelta(hours=1))
    visitors(exp, "bold", seen=800, at=reweighted + timedelta(hours=1))
    answer = results.phase_results(exp)
    assert answer["srm"]["expected"] == pytest.approx([700, 1300])
    assert not answer["srm"]["mismatch"]
    # held to the phase's equal split, the same visitors would be a mismatch
    Experience.objects.filter(pk=exp.pk).update(distribution="custom")
    exp.refresh_from_db()
    assert results.phase_results(exp)["srm"]["mismatch"]


def test_a_segmented_experience_shows_rates_without_comparisons(account) -> None:
    exp = ab_test(account, key="banner", type="segmented")
    visitors(exp, "control", seen=30, converted=3)
    visitors(exp, "bold", seen=10, converted=2)
    answer = results.phase_results(exp)
    assert [(r["visitors"], r["primary"]["rate"]) for r in answer["variants"]] == [
        (30, 0.1), (10, 0.2)]
    assert answer["srm"] is None and answer["winner"]["reason"] == "not_an_ab_test"
    assert all(r["bayesian"] is None and r["chance_to_be_best"] is None
               for r in answer["variants"])


# --------------------------------------------------------------------------- snapshots


def test_snapshots_make_the_charts_over_time(account, hero) -> None:
    t0 = timezone.now() - timedelta(hours=3)
    visitors(hero, "control", seen=100, converted=10)
    visitors(hero, "bold", seen=100, converted=5)
    results.snapshot(hero, now=t0)
    visitors(hero, "bold", seen=100, converted=25)
    results.snapshot(hero, now=t0 + timedelta(hours=1))
    assert ResultSnapshot.objects.filter(experience=hero, phase=1).count() == 2
    charts = results.history(hero, now=t0 + timedelta(hours=2))
    assert charts["times"] == [t0.isoformat(), (t0 + timedelta(hours=1)).isoformat()]
    assert charts["conversion_rate"] == {"control": [0.1, 0.1], "bold": [0.05, 0.15]}
    best = charts["chance_to_be_best"]
    assert best["control"][0] > 0.5 > best["control"][1]
    assert best["bold"][1] == pytest.approx(1 - best["control"][1])
    assert charts["split"]["series"] == {"control": [0.5, 0.5], "bold": [0.5, 0.5]}


def test_the_charts_end_with_the_results_now(account, hero) -> None:
    """Before the first hourly snapshot the charts still show where the experience stands:
    the page passes its current results, which end every line at now."""
    now = timezone.now()
    visitors(hero, "control", seen=100, converted=10)
    visitors(hero, "bold", seen=100, converted=20)
    assert results.history(hero, now=now)["times"] == []
    latest = results.phase_results(hero, now=now)
    charts = results.history(hero, now=now, latest=latest)
    assert charts["times"] == [now.isoformat()]
    assert charts["conversion_rate"] == {"control": [0.1], "bold": [0.2]}
    assert charts["chance_to_be_best"]["bold"][0] > 0.5
    results.snapshot(hero, now=now - timedelta(hours=1))
    charts = results.history(hero, now=now, latest=latest)
    assert charts["times"] == [(now - timedelta(hours=1)).isoformat(), now.isoformat()]
    # another phase's results are not drawn on this one
    assert results.history(hero, 1, now=now, latest={**latest, "phase": 2})["times"] == [
        (now - timedelta(hours=1)).isoformat()]


def test_the_split_over_time_follows_bandit_reweighting(account) -> None:
    exp = ab_test(account, key="btn")
    Experience.objects.filter(pk=exp.pk).update(distribution="bandit")
    exp.refresh_from_db()
    start = Phase.objects.get(experience=exp).started_at
    for hours, bold in ((1, 0.7), (2, 0.9)):
        BanditWeights.objects.create(account=account, experience=exp, phase=1,
                                     at=start + timedelta(hours=hours),
                                     weights={"control": 1 - bold, "bold": bold})
    split = results.history(exp, now=start + timedelta(hours=3))["split"]
    assert len(split["times"]) == 4 and split["times"][-1] == (
        start + timedelta(hours=3)).isoformat()
    assert split["series"]["bold"] == pytest.approx([0.5, 0.7, 0.9, 0.9])


def test_the_schedule_snapshots_running_experiences_only(account, hero) -> None:
    ab_test(account, key="draft", uid="b", status="draft")
    paused = ab_test(account, key="paused", uid="c", status="paused")
    done = ab_test(account, key="done", uid="d", status="completed")
    taken = results.snapshot_running()
    assert sorted(s.experience_id for s in taken) == sorted([hero.pk, paused.pk])
    assert not ResultSnapshot.objects.filter(experience=done).exists()


def test_the_list_overview(account, hero) -> None:
    visitors(hero, "control", seen=80, converted=8)
    visitors(hero, "bold", seen=20, converted=4)
    empty = ab_test(account, key="empty", uid="z")
    with CaptureQueriesContext(connection) as queries:
        figures = results.overview(account.pk, [hero, empty])
    assert len(queries.captured_queries) == 2
    assert figures[hero.pk] == {"visitors": 100, "conversions": 12, "rate": 0.12}
    assert figures[empty.pk] == {"visitors": 0, "conversions": 0, "rate": None}
