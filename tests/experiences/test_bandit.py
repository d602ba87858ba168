"""Thompson sampling weights: burn-in, floors, determinism, and traffic moving to the better arm."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import integrate
from scipy.stats import beta

from experiences.bandit import apply_floor, bandit_weights, simulate_bandit
from experiences.stats import StatsInputError


def test_equal_weights_until_every_arm_has_enough_visitors() -> None:
    assert bandit_weights([(99, 50), (5000, 100)]) == [0.5, 0.5]
    assert bandit_weights([(300, 1), (300, 40), (40, 0)]) == pytest.approx([1 / 3] * 3)
    assert bandit_weights([(99, 50), (5000, 100)], min_visitors=50) != [0.5, 0.5]


def test_better_arm_gets_more_traffic() -> None:
    weights = bandit_weights([(1000, 50), (1000, 80)], seed=1)
    assert weights[1] > 0.9
    assert weights[0] >= 0.01


def test_weights_are_the_probability_of_being_best() -> None:
    # With two arms, P(B > A) = ∫ f_B(x) F_A(x) dx for the Beta posteriors.
    a, b = (400, 30), (420, 38)
    post_a, post_b = beta(1 + a[1], 1 + a[0] - a[1]), beta(1 + b[1], 1 + b[0] - b[1])
    exact, _ = integrate.quad(lambda x: post_b.pdf(x) * post_a.cdf(x), 0, 1, limit=200)
    weights = bandit_weights([a, b], draws=200_000, seed=3)
    assert weights[1] == pytest.approx(exact, abs=0.005)
    assert weights[0] == pytest.approx(1 - exact, abs=0.005)


def test_no_arm_falls_below_the_floor_and_weights_sum_to_one() -> None:
    arms = [(5000, 100), (5000, 400), (5000, 90), (5000, 110)]
    weights = bandit_weights(arms, seed=5)
    assert sum(weights) == pytest.approx(1, abs=1e-12)
    assert min(weights) >= 0.01 - 1e-12
    assert weights.index(max(weights)) == 1
    five = bandit_weights(arms, seed=5, min_share=0.05)
    assert min(five) >= 0.05 - 1e-12
    assert sum(five) == pytest.approx(1, abs=1e-12)


def test_floor_takes_from_the_others_in_proportion() -> None:
    assert apply_floor([0.97, 0.03, 0.0], 0.05) == pytest.approx([0.90, 0.05, 0.05])
    assert apply_floor([0.6, 0.4], 0.1) == pytest.approx([0.6, 0.4])
    assert apply_floor([1.0, 0.0, 0.0, 0.0], 0.25) == pytest.approx([0.25] * 4)


def test_same_seed_same_weights() -> None:
    arms = [(800, 40), (800, 46), (800, 44)]
    assert bandit_weights(arms, seed=42) == bandit_weights(arms, seed=42)
    assert bandit_weights(arms, seed=42) != bandit_weights(arms, seed=43)


def test_simulated_run_shifts_traffic_to_the_better_arm() -> None:
    history = simulate_bandit([0.05, 0.08], rounds=20, visitors_per_round=1000, seed=11)
    first, last = history[0], history[-1]
    assert first["weights"] == [0.5, 0.5]
    assert last["weights"][1] > 0.9
    late_traffic = np.diff([h["visitors"] for h in history[-6:]], axis=0).sum(axis=0)
    assert late_traffic[1] / late_traffic.sum() > 0.8
    assert all(min(h["weights"]) >= 0.01 - 1e-12 for h in history)


def test_simulated_run_with_three_arms_finds_the_best() -> None:
    history = simulate_bandit([0.04, 0.04, 0.07], rounds=20, visitors_per_round=1500, seed=2)
    assert history[-1]["weights"].index(max(history[-1]["weights"])) == 2
    assert history[-1]["weights"][2] > 0.8


@pytest.mark.parametrize("arms,options,message", [
    ([], {}, "at least one arm"),
    ([(100, 5), (100, 6)], {"min_share": 0.6}, "min_share"),
    ([(100, 5), (100, 6)], {"draws": 0}, "draws"),
    ([(100, 5), (100, 106)], {}, "cannot come from"),
])
def test_bad_input_is_refused(arms: list[tuple[int, int]], options: dict[str, float],
                              message: str) -> None:
    with pytest.raises(StatsInputError, match=message):
        bandit_weights(arms, **options)
