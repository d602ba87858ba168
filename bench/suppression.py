"""Benchmark of the suppression check collection runs on every event (issue #14), beside its
floor measured in the same run: the Python work collection already does per event on the same
messages (``segment.parse_batch``: parsing, times, ids and the JSON encoding of each message).

CPU time (``time.process_time``, best of the rounds), so the machine's other load disturbs it
far less than a throughput figure; bench/collect.py gives the end-to-end figures (run with
``--suppressions N`` to put N identifiers on the list). No database: the list is built in
memory as ``profiles.collection.suppression`` holds it.

Usage:

    .venv/bin/python bench/suppression.py [--events 5000] [--rounds 20]
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--seed", type=int, default=20_000)
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cdp_site.settings")
    import django

    django.setup()
    from bench.collect import make_message
    from profiles.collection import suppression as sup
    from profiles.collection.segment import parse_batch
    from profiles.identifiers import bucket_seed, identifier_bucket, identifier_hash

    rng = random.Random(args.seed)
    now = datetime.now(UTC)
    messages = [make_message(rng, now) for _ in range(args.events)]
    for n, message in enumerate(messages):
        message["messageId"] = f"m-{n}"
    bodies = [{"batch": messages[i:i + 100]} for i in range(0, len(messages), 100)]
    events = [event for body in bodies for event in parse_batch(body, now)[0]]

    def parse_all() -> None:
        for body in bodies:
            parse_batch(body, now)

    def best(work: object) -> float:
        fastest = float("inf")
        for _ in range(args.rounds):
            start = time.process_time()
            work()  # type: ignore[operator]
            fastest = min(fastest, time.process_time() - start)
        return fastest / args.events * 1e6

    floor = best(parse_all)
    print(f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores, load "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}; {args.events:,} analytics.js "
          f"messages (seed {args.seed})")
    print(f"floor    segment.parse_batch (100 a batch): {floor:.2f} us of CPU per event")

    class Account:
        pk = 1

    keys = tuple(sorted(sup.ALWAYS_CHECKED | {"_uid", "user_id"}))
    for size in (0, 1_000, 100_000):
        values = [f"gone-{n}@example.com" for n in range(size)]
        sup._cache[1] = sup._Entry(
            time.monotonic() + 10**9, frozenset(identifier_hash(1, v) for v in values),
            frozenset(identifier_bucket(1, v) for v in values), keys,
            frozenset(k.lower() for k in keys), bucket_seed(1))
        cost = best(lambda: sup.drop_suppressed(Account, events))  # type: ignore[arg-type]
        kept, dropped = sup.drop_suppressed(Account, events)  # type: ignore[arg-type]
        assert dropped == 0 and len(kept) == len(events)
        print(f"check    {size:>7,} suppressed identifiers: {cost:.2f} us of CPU per event "
              f"({cost / floor:.1%} of the floor)")


if __name__ == "__main__":
    main()
