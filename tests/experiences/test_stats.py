"""Experiment results match GrowthBook's gbstats on the same inputs, to 4 decimal places.

gbstats is run here exactly as GrowthBook runs it (process_experiment_results with a binomial
metric and its default settings), beside experiences.stats, and every number is compared.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from gbstats.bayesian.tests import EffectBayesianABTest, EffectBayesianConfig
from gbstats.models.statistics import ProportionStatistic
from gbstats.utils import check_srm
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import norm

from experiences.stats import (
    Counts,
    StatsInputError,
    bandit_expected_split,
    bayesian_comparison,
    chance_to_be_best,
    experience_results,
    results_visible,
    srm_check,
    suggest_winner,
    variant_results,
)
from tests.experiences.gbstats_reference import gbstats_dimension, generated_experiences

FOUR_PLACES = 5e-5  # agreeing to 4 decimal places
GBSTATS_ERRORS = {
    None: None,
    "ZERO_NEGATIVE_BASELINE_VARIATION": "baseline_zero",
    "NO_UNITS_IN_VARIATION": "no_units",
    "ZERO_NEGATIVE_VARIANCE": "zero_variance",
}


def close(ours: float, theirs: float) -> bool:
    return abs(ours - theirs) <= FOUR_PLACES


def assert_matches_gbstats(counts: list[tuple[int, int]], weights: list[float]) -> None:
    ours = experience_results([Counts(*c) for c in counts], weights)
    bayes = gbstats_dimension(counts, weights, "bayesian")
    freq = gbstats_dimension(counts, weights, "frequentist")
    assert close(ours["srm"]["p_value"], bayes["srm"])
    assert ours["srm"]["mismatch"] is bool(bayes["srm"] < 0.001)
    for index in range(len(counts)):
        row, b, f = ours["variants"][index], bayes["variations"][index], freq["variations"][index]
        assert row["users"] == b["users"]
        assert close(row["conversion_rate"], b["cr"])
        if index == 0:
            continue
        ob, of = row["bayesian"], row["frequentist"]
        assert ob["error"] == GBSTATS_ERRORS[b["errorMessage"]]
        assert close(ob["chance_to_beat_control"], b["chanceToWin"])
        assert close(ob["uplift"], b["expected"])
        assert close(ob["uplift_stddev"], b["uplift"]["stddev"])
        assert close(ob["credible_interval"][0], b["ci"][0])
        assert close(ob["credible_interval"][1], b["ci"][1])
        assert close(ob["risk_control"], b["risk"][0])
        assert close(ob["risk_variant"], b["risk"][1])
        assert of["error"] == GBSTATS_ERRORS[f["errorMessage"]]
        assert close(of["p_value"], f["pValue"])
        assert close(of["uplift"], f["expected"])
        assert close(of["uplift_stddev"], f["uplift"]["stddev"])
        assert close(of["confidence_interval"][0], f["ci"][0])
        assert close(of["confidence_interval"][1], f["ci"][1])


EDGE_CASES = [
    ([(1000, 50), (1000, 65)], [0.5, 0.5]),
    ([(1000, 0), (1000, 5)], [0.5, 0.5]),  # control without conversions
    ([(1000, 5), (1000, 0)], [0.5, 0.5]),  # variant without conversions
    ([(1000, 0), (1000, 0)], [0.5, 0.5]),
    ([(100, 100), (100, 90)], [0.5, 0.5]),  # everyone converted in control
    ([(100, 90), (100, 100)], [0.5, 0.5]),  # everyone converted in the variant
    ([(500, 20), (0, 0)], [0.5, 0.5]),  # a variant nobody saw yet
    ([(2, 1), (3, 1)], [0.5, 0.5]),  # tiny counts
    ([(10_000_000, 312_345), (10_000_000, 313_999)], [0.5, 0.5]),
    ([(5000, 250), (5600, 290)], [0.5, 0.5]),  # sample-ratio mismatch
    ([(9000, 400), (1000, 60)], [0.9, 0.1]),
    ([(3000, 90), (3100, 120), (2950, 85), (3050, 140)], [0.25, 0.25, 0.25, 0.25]),
    ([(20000, 1200), (20100, 1300), (19900, 1150)], [1 / 3, 1 / 3, 1 / 3]),
]


@pytest.mark.parametrize("counts,weights", EDGE_CASES, ids=[str(c[0]) for c in EDGE_CASES])
def test_edge_cases_match_gbstats(counts: list[tuple[int, int]], weights: list[float]) -> None:
    assert_matches_gbstats(counts, weights)


GENERATED = generated_experiences(120, seed=20240601)


@pytest.mark.parametrize("counts,weights", GENERATED, ids=[str(c[0]) for c in GENERATED])
def test_generated_experiences_match_gbstats(counts: list[tuple[int, int]],
                                            weights: list[float]) -> None:
    assert_matches_gbstats(counts, weights)


arm = st.integers(min_value=2, max_value=200_000).flatmap(
    lambda users: st.tuples(st.just(users), st.integers(min_value=0, max_value=users)))


@settings(max_examples=60, deadline=None)
@given(st.lists(arm, min_size=2, max_size=4))
def test_any_counts_match_gbstats(counts: list[tuple[int, int]]) -> None:
    assert_matches_gbstats(counts, [1 / len(counts)] * len(counts))


@pytest.mark.parametrize("prior_mean,prior_stddev", [(0.0, 0.1), (0.05, 0.3), (-0.1, 0.05)])
@pytest.mark.parametrize("counts", [[(1000, 50), (1000, 65)], [(40000, 2000), (40000, 2150)],
                                    [(300, 12), (280, 20)]])
def test_proper_prior_matches_gbstats(counts: list[tuple[int, int]], prior_mean: float,
                                      prior_stddev: float) -> None:
    theirs = gbstats_dimension(counts, [0.5, 0.5], "bayesian", prior_proper=True,
                               prior_mean=prior_mean, prior_stddev=prior_stddev)["variations"][1]
    ours = bayesian_comparison(Counts(*counts[0]), Counts(*counts[1]), prior_proper=True,
                               prior_mean=prior_mean, prior_stddev=prior_stddev)
    assert close(ours["chance_to_beat_control"], theirs["chanceToWin"])
    assert close(ours["uplift"], theirs["expected"])
    assert close(ours["credible_interval"][0], theirs["ci"][0])
    assert close(ours["credible_interval"][1], theirs["ci"][1])
    assert close(ours["risk_control"], theirs["risk"][0])
    assert close(ours["risk_variant"], theirs["risk"][1])


@pytest.mark.parametrize("users,weights", [
    ([5000, 5000], [0.5, 0.5]), ([5000, 5600], [0.5, 0.5]), ([100, 120, 90], [0.2, 0.5, 0.3]),
    ([0, 0], [0.5, 0.5]), ([1000, 3, 980], [0.5, 0.0, 0.5]), ([8900, 1100], [0.9, 0.1]),
])
def test_srm_matches_gbstats(users: list[int], weights: list[float]) -> None:
    check = srm_check(users, weights)
    assert close(check["p_value"], check_srm(users, weights))
    assert check["mismatch"] is bool(check_srm(users, weights) < 0.001)


def test_srm_warns_below_one_in_a_thousand() -> None:
    assert srm_check([5000, 5600], [0.5, 0.5])["mismatch"] is True
    assert srm_check([5000, 5100], [0.5, 0.5])["mismatch"] is False


# --- Chance to be best ---


@pytest.mark.parametrize("counts", [
    [(1000, 50), (1000, 65)], [(20000, 900), (19000, 880)], [(150, 3), (160, 9)],
    [(5_000_000, 40_000), (5_000_000, 40_100)],
])
def test_chance_to_be_best_of_two_is_gbstats_absolute_chance_to_win(
        counts: list[tuple[int, int]]) -> None:
    (na, ca), (nb, cb) = counts
    test = EffectBayesianABTest(ProportionStatistic(sum=ca, n=na),
                                ProportionStatistic(sum=cb, n=nb),
                                EffectBayesianConfig(difference_type="absolute"))
    chance = test.compute_result().chance_to_win
    best = chance_to_be_best([Counts(*c) for c in counts])
    assert best is not None
    assert close(best[1], chance)
    assert close(best[0], 1 - chance)


def monte_carlo_best(counts: list[tuple[int, int]], draws: int = 400_000) -> np.ndarray:
    rng = np.random.default_rng(7)
    rates = np.array([c / n for n, c in counts])
    stddevs = np.sqrt(rates * (1 - rates) / np.array([n for n, _ in counts]))
    samples = rng.normal(rates, stddevs, size=(draws, len(counts)))
    return np.bincount(samples.argmax(axis=1), minlength=len(counts)) / draws


@pytest.mark.parametrize("counts", [
    [(3000, 90), (3100, 120), (2950, 85), (3050, 140)],
    [(20000, 1200), (20100, 1300), (19900, 1150)],
    [(800, 40), (820, 41), (790, 39)],
])
def test_chance_to_be_best_of_many_agrees_with_sampling(counts: list[tuple[int, int]]) -> None:
    best = chance_to_be_best([Counts(*c) for c in counts])
    assert best is not None
    assert sum(best) == pytest.approx(1, abs=1e-6)
    assert best == pytest.approx(monte_carlo_best(counts).tolist(), abs=0.005)


def test_chance_to_be_best_with_arms_known_exactly() -> None:
    # An arm without conversions has no spread: it is best only if every other arm falls below 0.
    # Two such arms tie at 0 and share that chance.
    best = chance_to_be_best([Counts(1000, 0), Counts(1000, 5), Counts(1000, 0)])
    assert best is not None
    assert sum(best) == pytest.approx(1, abs=1e-6)
    below_zero = norm.cdf(0, 0.005, np.sqrt(0.005 * 0.995 / 1000))
    assert best[0] == best[2] == pytest.approx(below_zero / 2, abs=1e-9)
    assert chance_to_be_best([Counts(10, 0), Counts(10, 0)]) == [0.5, 0.5]
    assert chance_to_be_best([Counts(10, 10), Counts(10, 3)]) == pytest.approx([1.0, 0.0], abs=1e-5)


def test_chance_to_be_best_needs_users_in_every_arm() -> None:
    assert chance_to_be_best([Counts(100, 5), Counts(0, 0)]) is None
    assert experience_results([(100, 5), (0, 0)], [0.5, 0.5])["variants"][1][
        "chance_to_be_best"] is None


# --- Shape, thresholds, winner, bad input ---


def test_experience_results_shape() -> None:
    results = experience_results([Counts(1000, 50), Counts(1000, 65)], [0.5, 0.5])
    control, variant = results["variants"]
    assert control["control"] is True and control["bayesian"] is None
    assert variant["control"] is False
    assert variant == {**variant_results(Counts(1000, 50), Counts(1000, 65)),
                       "control": False, "chance_to_be_best": variant["chance_to_be_best"]}
    assert set(results["srm"]) == {"p_value", "mismatch", "threshold"}


def test_results_show_after_enough_impressions_or_conversions() -> None:
    assert not results_visible(Counts(999, 29))
    assert results_visible(Counts(1000, 0))
    assert results_visible(Counts(200, 30))
    assert results_visible(Counts(500, 10), min_impressions=500)
    assert not results_visible(Counts(500, 10), min_impressions=600, min_conversions=11)


def clear_win() -> dict[str, Any]:
    return experience_results([Counts(20000, 1000), Counts(20000, 1200)], [0.5, 0.5])


def test_suggest_winner_after_fourteen_days_at_95_percent() -> None:
    results = clear_win()
    assert results["variants"][1]["chance_to_be_best"] > 0.99
    assert suggest_winner(results, days_running=14) == {"winner": 1, "reason": "winner"}
    assert suggest_winner(results, days_running=13.9) == {"winner": None, "reason": "too_early"}
    assert suggest_winner(results, days_running=3, min_days=2)["winner"] == 1


def test_no_winner_without_enough_data_or_a_clear_leader_or_with_srm() -> None:
    small = experience_results([Counts(300, 10), Counts(300, 25)], [0.5, 0.5])
    assert suggest_winner(small, days_running=30)["reason"] == "not_enough_data"
    close_race = experience_results([Counts(20000, 1000), Counts(20000, 1010)], [0.5, 0.5])
    assert suggest_winner(close_race, days_running=30) == {"winner": None,
                                                           "reason": "no_clear_winner"}
    assert suggest_winner(close_race, days_running=30, min_chance=0.5)["winner"] == 1
    skewed = experience_results([Counts(20000, 1000), Counts(23000, 1400)], [0.5, 0.5])
    assert suggest_winner(skewed, days_running=30)["reason"] == "sample_ratio_mismatch"


def test_bandit_expected_split_weights_each_period() -> None:
    expected = bandit_expected_split([(1000, [0.5, 0.5]), (2000, [0.2, 0.8])])
    assert expected == pytest.approx([500 + 400, 500 + 1600])
    assert srm_check([900, 2100], expected)["p_value"] == pytest.approx(1.0)
    assert srm_check([900, 2100], [0.5, 0.5])["mismatch"] is True


@pytest.mark.parametrize("counts,message", [
    ([(100, 5), (-1, 0)], "negative"),
    ([(100, 5), (10, 11)], "cannot come from"),
    ([(100, 5), (10.5, 1)], "whole numbers"),
    ([(100, 5), (True, 0)], "whole numbers"),
    ([(100, 5), ("ten", 1)], "whole numbers"),
    ([(100, 5), (10, 1, 2)], "whole numbers"),
    ([(100, 5)], "at least one variant"),
])
def test_bad_counts_are_refused(counts: list[tuple[Any, Any]], message: str) -> None:
    with pytest.raises(StatsInputError, match=message):
        experience_results(counts, [1 / len(counts)] * len(counts))


def test_srm_needs_one_weight_per_variant() -> None:
    with pytest.raises(StatsInputError, match="one weight per variant"):
        experience_results([(100, 5), (100, 6)], [1.0])
