"""Benchmark and agreement check of the experience statistics (experiences.stats, .bandit).

Runs experiences.stats and GrowthBook's gbstats (the floor: the engine we must match) on the same
generated experiments, prints the largest difference seen for every reported number, and the time
per experiment for both; then the cost of a 90-day "chance to be best over time" series and of one
bandit reweighting. Pure CPU, no database; needs the dev extra (gbstats). Usage:

    .venv/bin/python bench/stats.py [--experiments 500] [--seed 7]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from experiences.bandit import bandit_weights  # noqa: E402
from experiences.stats import Counts, chance_to_be_best, experience_results  # noqa: E402
from tests.experiences.gbstats_reference import (  # noqa: E402
    gbstats_dimension,
    generated_experiences,
)

# (our path in a variant row, gbstats engine, gbstats key path)
FIELDS: list[tuple[str, tuple[Any, ...], str, tuple[Any, ...]]] = [
    ("chance to beat control", ("bayesian", "chance_to_beat_control"), "bayesian",
     ("chanceToWin",)),
    ("bayesian uplift", ("bayesian", "uplift"), "bayesian", ("expected",)),
    ("credible interval low", ("bayesian", "credible_interval", 0), "bayesian", ("ci", 0)),
    ("credible interval high", ("bayesian", "credible_interval", 1), "bayesian", ("ci", 1)),
    ("risk control", ("bayesian", "risk_control"), "bayesian", ("risk", 0)),
    ("risk variant", ("bayesian", "risk_variant"), "bayesian", ("risk", 1)),
    ("p-value", ("frequentist", "p_value"), "frequentist", ("pValue",)),
    ("confidence interval low", ("frequentist", "confidence_interval", 0), "frequentist",
     ("ci", 0)),
    ("confidence interval high", ("frequentist", "confidence_interval", 1), "frequentist",
     ("ci", 1)),
]


def dig(value: Any, path: tuple[Any, ...]) -> float:
    for key in path:
        value = value[key]
    return float(value)


def timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--experiments", type=int, default=500)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    cases = generated_experiences(args.experiments, args.seed)

    worst = dict.fromkeys([name for name, *_ in FIELDS] + ["srm p-value"], 0.0)
    ours_time = theirs_time = 0.0
    for counts, weights in cases:
        start = time.perf_counter()
        ours = experience_results([Counts(*arm) for arm in counts], weights)
        ours_time += time.perf_counter() - start
        start = time.perf_counter()
        box = {engine: gbstats_dimension(counts, weights, engine)
               for engine in ("bayesian", "frequentist")}
        theirs_time += time.perf_counter() - start
        worst["srm p-value"] = max(worst["srm p-value"],
                                   abs(ours["srm"]["p_value"] - box["bayesian"]["srm"]))
        for index in range(1, len(counts)):
            for name, our_path, engine, their_path in FIELDS:
                mine = dig(ours["variants"][index], our_path)
                theirs = dig(box[engine]["variations"][index], their_path)
                worst[name] = max(worst[name], abs(mine - theirs))

    print(f"agreement with gbstats over {len(cases)} experiments (2-4 arms), largest difference:")
    for name, diff in worst.items():
        print(f"  {name:26s} {diff:.2e}")
    print(f"experience_results: {ours_time / len(cases) * 1000:.2f} ms per experiment; "
          f"floor gbstats (both engines): {theirs_time / len(cases) * 1000:.2f} ms "
          f"(ratio {theirs_time / ours_time:.1f}x faster)")

    series = [[Counts(300 * day, 12 * day + day // 3 * k) for k in range(4)] for day in
              range(1, 91)]
    elapsed = timed(lambda: [chance_to_be_best(day) for day in series])
    print(f"chance to be best over 90 days, 4 arms: {elapsed * 1000:.1f} ms")
    arms = [(20000, 900), (20000, 1000), (20000, 950), (20000, 1020)]
    elapsed = timed(lambda: bandit_weights(arms, seed=1))
    print(f"bandit_weights, 4 arms, 10,000 draws: {elapsed * 1000:.1f} ms")


if __name__ == "__main__":
    main()
