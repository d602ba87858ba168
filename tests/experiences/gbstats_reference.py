"""GrowthBook's gbstats run as GrowthBook runs it, and generated experiments to feed it.

Shared by tests/experiences/test_stats.py and bench/stats.py.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gbstats.gbstats import process_experiment_results


def gbstats_dimension(counts: list[tuple[int, int]], weights: list[float], engine: str,
                      **metric: Any) -> dict[str, Any]:
    """Run gbstats the way GrowthBook's back end does, for one binomial metric."""
    ids = [str(i) for i in range(len(counts))]
    rows = [{"dimension": "All", "variation": ids[i], "users": users, "count": users,
             "main_sum": conversions, "main_sum_squares": conversions}
            for i, (users, conversions) in enumerate(counts)]
    data = {
        "metrics": {"m": {"id": "m", "name": "conversion", "statistic_type": "mean",
                          "main_metric_type": "binomial", **metric}},
        "analyses": [{"var_names": ids, "var_ids": ids, "weights": weights,
                      "stats_engine": engine}],
        "query_results": [{"rows": rows, "metrics": ["m"]}],
    }
    return process_experiment_results(data)[0]["analyses"][0]["dimensions"][0]


def generated_experiences(count: int, seed: int) -> list[tuple[list[tuple[int, int]], list[float]]]:
    """Experiences of 2 to 4 arms, 20 to 2 M users, rates 0.1 % to 60 %, uneven splits."""
    rng = np.random.default_rng(seed)
    cases = []
    for _ in range(count):
        arms = int(rng.integers(2, 5))
        raw = rng.uniform(0.5, 1.5, arms)
        weights = [float(w) for w in raw / raw.sum()]
        total = int(10 ** rng.uniform(1.3, 6.3))
        base = float(10 ** rng.uniform(-3, np.log10(0.6)))
        counts = []
        for w in weights:
            users = int(rng.binomial(total, w))
            rate = min(base * float(rng.uniform(0.7, 1.4)), 0.95)
            counts.append((users, int(rng.binomial(users, rate))))
        cases.append((counts, weights))
    return cases
