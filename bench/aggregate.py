"""Benchmark of the stream aggregator (profiles.explorer.aggregate): events folded per second.

Creates a scratch database beside the configured one (``<name>_bench_aggregate``; the
configured database is not touched), migrates it, writes N Segment-like messages with COPY
(fixed seed: the same messages every run), then times ``aggregate_streams`` catching up with
them and checks the counts. Usage:

    .venv/bin/python bench/aggregate.py [--events 200000] [--chunk 10000] [--keep]

DATABASE_URL picks the server (default: the embedded one in var/pgdata).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import drop_database, scratch_database, server_url  # noqa: E402
from cdp_site.dburl import database_name  # noqa: E402

EVENT_NAMES = ["Product Viewed", "Product Added", "Order Completed", "Signed Up", "Searched"]
PATHS = [f"/p/{n}" for n in range(400)]
AGENTS = [
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:121.0) Gecko/20100101 Firefox/121.0",
]


def make_message(rng: random.Random, index: int, at: datetime) -> dict[str, Any]:
    """A Segment analytics.js message: track (most), identify or page, about 30 keys."""
    stamp = at.isoformat().replace("+00:00", "Z")
    path = rng.choice(PATHS)
    base: dict[str, Any] = {
        "messageId": f"bench-{index}",
        "anonymousId": str(uuid.UUID(int=rng.getrandbits(128))),
        "userId": f"user-{rng.randint(1, 50_000)}",
        "timestamp": stamp,
        "sentAt": stamp,
        "context": {
            "ip": f"10.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}",
            "userAgent": rng.choice(AGENTS),
            "locale": rng.choice(["en-US", "en-GB", "de-DE", "fr-FR"]),
            "library": {"name": "analytics.js", "version": "4.1.0"},
            "page": {"path": path, "referrer": "https://www.google.com/", "title": "Shop",
                     "url": f"https://shop.example.com{path}", "search": ""},
            "screen": {"width": rng.choice([390, 1440, 1920]), "height": 900},
            "campaign": {"source": "newsletter", "medium": "email", "name": "autumn"},
        },
    }
    roll = rng.random()
    if roll < 0.1:
        base.update(type="identify", traits={
            "email": f"person{rng.randint(1, 50_000)}@example.com", "plan": "pro",
            "logins": rng.randint(1, 300), "created_at": "2024-03-01T10:00:00Z",
        })
    elif roll < 0.25:
        base.update(type="page", name="Product", properties={"path": path, "title": "Shop"})
    else:
        base.update(type="track", event=rng.choice(EVENT_NAMES), properties={
            "product_id": f"sku-{rng.randint(1, 5_000)}", "price": round(rng.uniform(1, 300), 2),
            "quantity": rng.randint(1, 5), "currency": "USD", "in_stock": rng.random() < 0.9,
            "tags": ["autumn", "sale"][: rng.randint(0, 2)],
        })
    return base


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--chunk", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=20_000)
    parser.add_argument("--workers", type=int, default=0,
                        help="summarise in this many worker processes (0: in this one)")
    parser.add_argument("--no-read-ahead", action="store_true",
                        help="read each chunk only when the previous one is written")
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    args = parser.parse_args()

    base_url = server_url()
    url = scratch_database(base_url, database_name(base_url) + "_bench_aggregate")
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cdp_site.settings")
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection
    from django.db.models import Sum

    from profiles.explorer.aggregate import (
        aggregate_streams,
        shutdown_workers,
        summarize_in_parallel,
    )
    from profiles.models import RawKey, StreamHourlyCount
    from tests.conftest import make_account

    try:
        call_command("migrate", verbosity=0)
        accounts = [make_account("Bench One", "bench-one"), make_account("Bench Two", "bench-two")]
        rng = random.Random(args.seed)
        now = datetime.now(UTC)
        start = now - timedelta(hours=2)
        step = timedelta(hours=2) / args.events
        began = time.perf_counter()
        with connection.cursor() as cursor, cursor.cursor.copy(
            "COPY profiles_rawevent (account_id, stream, message_id, type, event, user_id, "
            "anonymous_id, received_at, event_at, source, message) FROM STDIN"
        ) as copy:
            for index in range(args.events):
                at = start + step * index
                message = make_message(rng, index, at)
                account = accounts[index % 5 == 0]
                stream = "web" if index % 3 else "app"
                copy.write_row((
                    account.pk, stream, message["messageId"], message["type"],
                    message.get("event", ""), message["userId"], message["anonymousId"], at, at,
                    "bench", json.dumps(message),
                ))
        print(f"wrote {args.events:,} events with COPY in {time.perf_counter() - began:.1f} s")
        if args.workers > 1:  # start the worker processes before timing
            summarize_in_parallel([(0, 0, "w", 0, "", "", "{}", None)] * 8, args.workers)

        began = time.perf_counter()
        cpu = time.process_time()
        result = aggregate_streams(chunk_size=args.chunk, settle_seconds=0, workers=args.workers,
                                   read_ahead=not args.no_read_ahead)
        cpu = time.process_time() - cpu
        seconds = time.perf_counter() - began
        counted = StreamHourlyCount.objects.aggregate(total=Sum("events"))["total"]
        assert counted == args.events, (counted, args.events)
        assert result.events == args.events
        keys = RawKey.objects.count()
        print(f"aggregated {result.events:,} events in {result.chunks} chunks of "
              f"{args.chunk:,} with {args.workers or 'no'} worker processes, read-ahead "
              f"{'off' if args.no_read_ahead else 'on'}: {seconds:.2f} s, "
              f"{result.events / seconds:,.0f} events/s ({keys} raw keys; this process used "
              f"{cpu:.2f} s of CPU; load average {os.getloadavg()[0]:.2f})")
    finally:
        shutdown_workers()
        connection.close()
        if not args.keep:
            drop_database(url)


if __name__ == "__main__":
    main()
