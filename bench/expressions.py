"""Benchmark of the expression language (profiles.schema.expressions): evaluations per second.

Compiles a few typical mappings, guards and route rules once, then times ``evaluate`` on
a fixed event (the best of several runs, so a busy machine shows its quiet moments).
Pure CPU: no database. Usage:

    .venv/bin/python bench/expressions.py [--number 200000] [--repeat 5]

The target in issue 4 is a mapping like ``email(origin.email)`` well under 5 µs.
"""

from __future__ import annotations

import argparse
import sys
import time
import timeit
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from profiles.schema.expressions import compile_expression  # noqa: E402

EVENT: dict[str, Any] = {
    "taxonomy": "cuisine",
    "origin.email": "Mason.Bailey61@Example.com",
    "origin": {"email": "Mason.Bailey61@Example.com"},
    "response.loyalty_tier": "Gold",
    "response.preferred_activities": ["Parasailing", "Sailing", "Kayaking"],
    "_url": "https://www.example.com/blog/post?utm_source=newsletter&x=1",
    "_ts": "1704164645000",
    "tags": "a, b, c",
    "user_agent": ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 "
                   "(KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1"),
    "order": {"total": "42.50", "items": [{"sku": "s1"}, {"sku": "s2"}]},
}

EXPRESSIONS = [
    "taxonomy",
    "response.loyalty_tier",
    "email(`origin.email`)",
    "email(origin.email)",
    'contains(`_url`, "localhost")',
    "exists(origin.email) AND hasprefix(`_url`, \"https://\")",
    'taxonomy IN ["cuisine", "travel", "sport"]',
    "qs(`_url`, \"utm_source\")",
    "todate(_ts)",
    "tonumber(order.total) * 100",
    "order.items[1].sku",
    "set(split(tags, \",\"))",
    "hash.sha256(tolower(trim(origin.email)))",
    "useragent(user_agent, \"os\")",
    "map(taxonomy, 1)",
]


def measure(text: str, number: int, repeat: int) -> tuple[float, float]:
    """(seconds to compile once, best seconds per evaluation)."""
    started = time.perf_counter()
    expression = compile_expression.__wrapped__(text)  # uncached, to time the compile
    compile_seconds = time.perf_counter() - started
    now = datetime(2026, 3, 3, tzinfo=UTC)
    evaluate = expression.evaluate
    runs = timeit.repeat(lambda: evaluate(EVENT, now), number=number, repeat=repeat)
    return compile_seconds, min(runs) / number


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--number", type=int, default=200_000, help="evaluations per run")
    parser.add_argument("--repeat", type=int, default=5, help="runs; the best one counts")
    args = parser.parse_args()

    compile_expression("taxonomy")  # build the parser before timing compiles
    print(f"{'expression':58} {'compile':>9} {'per eval':>10} {'evals/s':>12}")
    for text in EXPRESSIONS:
        compile_seconds, per_eval = measure(text, args.number, args.repeat)
        print(f"{text:58} {compile_seconds * 1e3:7.2f}ms {per_eval * 1e6:8.3f}µs "
              f"{1 / per_eval:12,.0f}")


if __name__ == "__main__":
    main()
