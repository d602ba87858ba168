"""Multi-armed bandit weights by Thompson sampling.

Each arm's conversion rate has a Beta(1 + conversions, 1 + visitors - conversions) posterior
(a uniform prior updated by what the arm saw). Drawing one rate per arm many times, the share of
draws in which an arm has the highest rate is the probability that it is the best arm, and that
probability becomes its share of traffic: the better an arm looks, the more visitors it gets,
while an arm that might still be best keeps some.

Two guards keep the bandit honest: no reweighting until every arm has `min_visitors` (a few early
conversions must not starve an arm), and no arm below `min_share` of traffic (so it can still
show it was underrated, and so results keep a comparison group).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from experiences.stats import Counts, StatsInputError, as_counts

MIN_SHARE = 0.01
MIN_VISITORS = 100
DRAWS = 10_000


def best_arm_shares(arms: Sequence[Counts], *, draws: int = DRAWS,
                    rng: np.random.Generator) -> np.ndarray:
    """Share of `draws` posterior draws in which each arm has the highest rate."""
    visitors = np.array([arm.users for arm in arms], dtype=float)
    conversions = np.array([arm.conversions for arm in arms], dtype=float)
    samples = rng.beta(1 + conversions, 1 + visitors - conversions, size=(draws, len(arms)))
    wins = np.bincount(samples.argmax(axis=1), minlength=len(arms))
    return wins / draws


def apply_floor(shares: Sequence[float] | np.ndarray, min_share: float) -> list[float]:
    """Raise every share to at least `min_share`, taking the difference from the others in
    proportion to their shares, so the result still sums to 1 and keeps their order."""
    values = np.asarray(shares, dtype=float)
    floored = np.zeros(len(values), dtype=bool)
    while True:
        free = ~floored
        remaining = 1 - min_share * floored.sum()
        free_total = values[free].sum()
        scaled = (values * remaining / free_total if free_total > 0
                  else np.full(len(values), remaining / max(free.sum(), 1)))
        result = np.where(floored, min_share, scaled)
        below = free & (result < min_share)
        if not below.any():
            return [float(x) for x in result]
        floored |= below


def bandit_weights(
    arms: Sequence[tuple[int, int]],
    *,
    min_share: float = MIN_SHARE,
    min_visitors: int = MIN_VISITORS,
    draws: int = DRAWS,
    seed: int | None = None,
) -> list[float]:
    """Traffic shares for the arms (visitors, conversions), summing to 1.

    Equal shares while any arm has fewer than `min_visitors`; otherwise each arm's Thompson
    sampling probability of being best, floored at `min_share`. The same `seed` gives the same
    weights.
    """
    counts = [as_counts(arm) for arm in arms]
    if not counts:
        raise StatsInputError("a bandit needs at least one arm")
    if not 0 <= min_share <= 1 / len(counts):
        raise StatsInputError(f"min_share must be between 0 and 1/{len(counts)} for "
                              f"{len(counts)} arms")
    if draws < 1:
        raise StatsInputError("draws must be at least 1")
    if any(arm.users < min_visitors for arm in counts):
        return [1 / len(counts)] * len(counts)
    shares = best_arm_shares(counts, draws=draws, rng=np.random.default_rng(seed))
    return apply_floor(shares, min_share)


def simulate_bandit(
    true_rates: Sequence[float],
    *,
    rounds: int = 20,
    visitors_per_round: int = 1000,
    seed: int = 0,
    **weight_options: Any,
) -> list[dict[str, Any]]:
    """Run a bandit against known conversion rates: each round splits its visitors by the
    current weights, draws their conversions, then recomputes the weights.

    Returns one entry per round: the weights it ran with and the cumulative counts after it.
    Used by tests, the docs and the demo seed to show traffic moving to the better arm.
    """
    rng = np.random.default_rng(seed)
    visitors = np.zeros(len(true_rates), dtype=int)
    conversions = np.zeros(len(true_rates), dtype=int)
    weights = [1 / len(true_rates)] * len(true_rates)
    history = []
    for round_index in range(rounds):
        arrivals = rng.multinomial(visitors_per_round, weights)
        visitors += arrivals
        conversions += rng.binomial(arrivals, true_rates)
        history.append({"round": round_index, "weights": weights,
                        "visitors": visitors.tolist(), "conversions": conversions.tolist()})
        weights = bandit_weights(list(zip(visitors.tolist(), conversions.tolist(), strict=True)),
                                 seed=seed + round_index + 1, **weight_options)
    return history
