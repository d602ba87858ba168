"""Benchmark of processing (profiles.pipeline): raw events -> mapped -> identity -> profiles.

Creates a scratch database beside the configured one (``strata_bench_process``; the configured
database is not touched), migrates it, installs the Lytics use-case schema, generates N events
(fixed seed: the same events every run) and stores them through ``collect.store_events`` in
batches of 5,000, which queues them (PendingEvent). Then it starts two ``manage.py
process_events --loop`` worker processes and times them draining the queue: the sustained
rate is measured between 5 % and 95 % of the events processed (worker start-up and the tail
left out). Then ``rebuild.start_rebuild`` and the same two workers again: the rebuild time is
from the request until the queue is empty. Floors, same run: the rate the events were stored at,
and one SQL-only pass copying the same rows (``INSERT … SELECT`` into a plain table).

The events (one account): 60 % page views on stream ``web`` carrying only the ``_uid`` cookie
and a taxonomy; 30 % page views and identifies carrying an email and the cookie (two
identifiers); 10 % CRM records on ``crm_users`` (email, loyalty tier, preferred activities).
People: events/10 of them, each with one to three cookies. Usage:

    .venv/bin/python bench/process.py [--events 1000000] [--workers 2] [--batch 1000] [--keep]

DATABASE_URL picks the server (default postgres://postgres@127.0.0.1:5432/strata).
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TAXONOMY = ["news", "sports", "travel", "food", "tech", "fashion", "finance", "health",
            "music", "movies", "outdoors", "home"]
TIERS = ["bronze", "silver", "gold", "platinum"]
ACTIVITIES = ["hiking", "running", "cycling", "yoga", "swimming", "climbing", "skiing"]
STORE_BATCH = 5_000


def make_events(rng: random.Random, count: int, start: datetime
                ) -> list[tuple[str, dict[str, Any], datetime]]:
    """(stream, message, event time) for ``count`` events, in time order."""
    people = max(1, count // 10)
    step = timedelta(hours=6) / count
    out = []
    for index in range(count):
        at = start + step * index
        person = rng.randrange(people)
        cookie = f"c{person:07d}-{rng.randrange(1 + person % 3)}"
        email = f"person{person}@example.com"
        stamp = at.isoformat().replace("+00:00", "Z")
        roll = rng.random()
        if roll < 0.6:  # a page view identified by its cookie only
            message: dict[str, Any] = {
                "type": "page", "messageId": f"m{index}", "anonymousId": cookie, "_uid": cookie,
                "timestamp": stamp, "name": "Article",
                "properties": {"taxonomy": rng.choice(TAXONOMY),
                               "path": f"/a/{rng.randrange(5000)}"},
                "context": {"page": {"url": f"https://news.example.com/a/{index % 5000}"}},
            }
            stream = "web"
        elif roll < 0.9:  # email + cookie: a logged-in page view or an identify
            if roll < 0.8:
                message = {"type": "page", "messageId": f"m{index}", "anonymousId": cookie,
                           "timestamp": stamp, "name": "Article",
                           "properties": {"taxonomy": rng.choice(TAXONOMY)},
                           "context": {"traits": {"email": email}}}
            else:
                message = {"type": "identify", "messageId": f"m{index}", "anonymousId": cookie,
                           "userId": f"u{person}", "timestamp": stamp,
                           "traits": {"email": email, "name": f"Person {person}"}}
            stream = "web"
        else:  # a CRM record
            message = {"type": "track", "event": "crm_sync", "messageId": f"m{index}",
                       "timestamp": stamp,
                       "origin": {"email": email, "id": person},
                       "response": {"loyalty_tier": rng.choice(TIERS),
                                    "preferred_activities": rng.sample(ACTIVITIES, 2)}}
            stream = "crm_users"
        out.append((stream, message, at))
    return out


def scratch_database(base_url: str, name: str) -> str:
    import psycopg
    from psycopg import sql

    admin = base_url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
            sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return base_url.rsplit("/", 1)[0] + "/" + name


def drop_database(url: str) -> None:
    import psycopg
    from psycopg import sql

    name = url.rsplit("/", 1)[1]
    with psycopg.connect(url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
            sql.Identifier(name)))


def pending(account_id: int) -> int:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM profiles_pendingevent WHERE account_id = %s",
                       [account_id])
        return cursor.fetchone()[0]


def drain(account_id: int, total: int, workers: int, batch: int, url: str
          ) -> tuple[float, float]:
    """Run the workers until the queue is empty: (seconds in all, events/s between 5 % and
    95 % processed)."""
    env = {**os.environ, "DATABASE_URL": url, "DJANGO_SETTINGS_MODULE": "cdp_site.settings"}
    began = time.perf_counter()
    procs = [subprocess.Popen([sys.executable, str(ROOT / "manage.py"), "process_events",
                               "--loop", "--batch", str(batch), "--interval", "0.2"],
                              env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
             for _ in range(workers)]
    marks: dict[str, tuple[float, int]] = {}
    try:
        while True:
            left = pending(account_id)
            now = time.perf_counter()
            done = total - left
            if "lo" not in marks and done >= total * 0.05:
                marks["lo"] = (now, done)
            if "hi" not in marks and done >= total * 0.95:
                marks["hi"] = (now, done)
            if left == 0:
                break
            if any(p.poll() is not None for p in procs):
                raise RuntimeError("a worker exited")
            time.sleep(1.0)  # counting the queue costs the database CPU too
        seconds = time.perf_counter() - began
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(30)
    (t0, d0), (t1, d1) = marks["lo"], marks["hi"]
    return seconds, (d1 - d0) / (t1 - t0) if t1 > t0 else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch", type=int, default=1000, help="process_events --batch")
    parser.add_argument("--seed", type=int, default=4)
    parser.add_argument("--no-rebuild", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    args = parser.parse_args()

    base_url = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/strata")
    url = scratch_database(base_url, "strata_bench_process")
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cdp_site.settings")
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    from cdp_site.models import Account
    from profiles.collect import IncomingEvent, store_events
    from profiles.models import FailedEvent, Profile
    from profiles.rebuild import start_rebuild
    from profiles.schema import install_lytics_schema

    try:
        call_command("migrate", verbosity=0)
        account = Account.objects.create(name="Bench Process", slug="bench-process")
        install_lytics_schema(account)
        rng = random.Random(args.seed)
        start = datetime.now(UTC) - timedelta(hours=7)
        events = make_events(rng, args.events, start)
        import json

        by_stream: dict[str, list[IncomingEvent]] = {}
        stored = 0
        began = time.perf_counter()
        received = datetime.now(UTC)

        def flush(stream: str) -> None:
            nonlocal stored
            stored += store_events(account, stream, by_stream.pop(stream), source="bench",
                                   received_at=received)

        for stream, message, at in events:
            items = by_stream.setdefault(stream, [])
            items.append(IncomingEvent(
                message=message, message_id=message["messageId"], type=message["type"],
                event=message.get("event", ""), user_id=message.get("userId", ""),
                anonymous_id=message.get("anonymousId", ""), event_at=at,
                encoded=json.dumps(message, separators=(",", ":"))))
            if len(items) >= STORE_BATCH:
                flush(stream)
        for stream in list(by_stream):
            flush(stream)
        load_seconds = time.perf_counter() - began
        assert stored == args.events, (stored, args.events)
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE profiles_rawevent")
            cursor.execute("VACUUM ANALYZE profiles_pendingevent")
            cursor.execute("CREATE UNLOGGED TABLE IF NOT EXISTS bench_floor (id bigint, "
                           "account_id bigint, stream text, message jsonb)")
            floor_began = time.perf_counter()
            cursor.execute("INSERT INTO bench_floor SELECT id, account_id, stream, message "
                           "FROM profiles_rawevent")
            floor_seconds = time.perf_counter() - floor_began
            cursor.execute("DROP TABLE bench_floor")
        connection.close()

        seconds, rate = drain(account.pk, args.events, args.workers, args.batch, url)
        profiles = Profile.objects.filter(account=account, merged_into__isnull=True).count()
        failed = FailedEvent.objects.filter(account=account).count()
        print(f"load average {os.getloadavg()[0]:.2f}; {args.events:,} events, "
              f"{args.workers} workers, batches of {args.batch}; {profiles:,} profiles, "
              f"{failed} failed events")
        print(f"floor: stored with store_events at {args.events / load_seconds:,.0f} events/s; "
              f"INSERT … SELECT of the rows {args.events / floor_seconds:,.0f} rows/s")
        print(f"processing: {rate:,.0f} events/s sustained (5 %..95 %), "
              f"{seconds:.1f} s in all ({args.events / seconds:,.0f} events/s)   "
              f"target >= 5,000 events/s")
        if not args.no_rebuild:
            connection.close()
            began = time.perf_counter()
            start_rebuild(account)
            requested = time.perf_counter() - began
            connection.close()
            seconds, rate = drain(account.pk, args.events, args.workers, args.batch, url)
            total = requested + seconds
            after = Profile.objects.filter(account=account, merged_into__isnull=True).count()
            assert after == profiles, (after, profiles)
            print(f"rebuild: {total:.1f} s for {args.events:,} events (start_rebuild "
                  f"{requested:.1f} s; {rate:,.0f} events/s sustained)   "
                  f"target <= {300 * args.events / 1_000_000:.0f} s "
                  f"(5 min per 1 M; load average {os.getloadavg()[0]:.2f})")
    finally:
        connection.close()
        if not args.keep:
            drop_database(url)


if __name__ == "__main__":
    main()
