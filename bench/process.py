"""Benchmark of processing (profiles.processing.pipeline): raw events -> mapped -> identity ->
profiles.

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
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import drop_database, scratch_database  # noqa: E402
from cdp_site.dburl import database_name, with_database  # noqa: E402

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


_PROCESSED = """
SELECT coalesce(sum(events), 0) FROM profiles_processingstat
WHERE account_id = %s AND minute >= %s
"""


def processed(account_id: int, since: datetime) -> int:
    """Events the workers processed since ``since`` (from ProcessingStat: a handful of rows,
    where counting the queue would cost the database more CPU than some batches)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(_PROCESSED, [account_id, since.replace(second=0, microsecond=0)])
        return int(cursor.fetchone()[0])


def pending(account_id: int) -> int:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM profiles_pendingevent WHERE account_id = %s",
                       [account_id])
        return cursor.fetchone()[0]


WORKER_ENV = {"DEBUG": "0", "SECRET_KEY": "bench-" + "k" * 50, "ALLOWED_HOSTS": "127.0.0.1",
              "STRATA_TOKEN_PEPPER": "bench-pepper", "LOG_LEVEL": "WARNING"}


@dataclass
class Drained:
    seconds: float  # from the workers' start until the queue is empty
    rate: float  # events/s between 5 % and 95 % processed
    loads: list[float]  # 1-minute load average, once a second
    worker_cpu: float  # CPU seconds of the worker processes
    db_cpu: float  # CPU seconds of their PostgreSQL backends
    steps: dict[str, float]  # seconds per pipeline step, all workers (process_events --timings)

    def describe(self, events: int) -> str:
        loads = self.loads
        steps = ", ".join(f"{name.rsplit('.', 1)[-1]} {1e6 * s / events:.0f}"
                          for name, s in sorted(self.steps.items(), key=lambda kv: -kv[1]))
        return (f"CPU per event: workers {1e6 * self.worker_cpu / events:.0f} µs, PostgreSQL "
                f"{1e6 * self.db_cpu / events:.0f} µs; load average {loads[0]:.1f} at the "
                f"start, {min(loads):.1f} to {max(loads):.1f}, {loads[-1]:.1f} at the end\n"
                f"    wall µs per event by step (all workers): {steps}")


class CpuWatch:
    """CPU seconds of some processes and of a database's backends, sampled as they come and go
    (a backend that ends between two samples loses at most its last second)."""

    def __init__(self, pids: list[int], database: str) -> None:
        import psutil

        self.psutil = psutil
        self.pids = pids
        self.database = database
        self.first: dict[int, float] = {}
        self.last: dict[int, float] = {}
        self.own = set(self._backends())  # this script's own connection, already open
        self.sample()
        self.started = True

    def _backends(self) -> list[int]:
        found = []
        for proc in self.psutil.process_iter(["cmdline"]):
            words = (proc.info["cmdline"] or [""])[0].split()
            if words[:1] == ["postgres:"] and self.database in words:
                found.append(proc.pid)
        return found

    def sample(self) -> None:
        for pid in [*self.pids, *self._backends()]:
            if pid in getattr(self, "own", ()):
                continue
            try:
                times = self.psutil.Process(pid).cpu_times()
            except self.psutil.Error:
                continue
            used = times.user + times.system
            # a process that appears later started during the run
            self.first.setdefault(pid, 0.0 if getattr(self, "started", False) else used)
            self.last[pid] = used

    def used(self, pids: list[int] | None = None) -> float:
        chosen = self.last if pids is None else {p: self.last[p] for p in pids if p in self.last}
        return sum(v - self.first[p] for p, v in chosen.items())


def drain(account_id: int, total: int, workers: int, batch: int, url: str) -> Drained:
    """Run the workers until the queue is empty."""
    from django.db import connection
    from django.utils import timezone

    env = {**os.environ, **WORKER_ENV, "DATABASE_URL": url,
           "DJANGO_SETTINGS_MODULE": "cdp_site.settings"}
    since = timezone.now()
    base = processed(account_id, since)
    began = time.perf_counter()
    procs = [subprocess.Popen([sys.executable, str(ROOT / "manage.py"), "process_events",
                               "--loop", "--batch", str(batch), "--interval", "0.2",
                               "--timings"],
                              env=env, cwd=ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True)
             for _ in range(workers)]
    watch = CpuWatch([p.pid for p in procs], database_name(url))
    marks: dict[str, tuple[float, int]] = {}
    loads = [os.getloadavg()[0]]
    steps: dict[str, float] = {}
    try:
        while True:
            done = processed(account_id, since) - base
            now = time.perf_counter()
            if "lo" not in marks and done >= total * 0.05:
                marks["lo"] = (now, done)
            if "hi" not in marks and done >= total * 0.95:
                marks["hi"] = (now, done)
            if done >= total and pending(account_id) == 0:
                break
            if any(p.poll() is not None for p in procs):
                raise RuntimeError("a worker exited")
            time.sleep(1.0)
            loads.append(os.getloadavg()[0])
            watch.sample()
        seconds = time.perf_counter() - began
        watch.sample()
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            out, _ = p.communicate(timeout=60)
            for line in out.splitlines():
                if line.startswith("step "):
                    _, name, value = line.split()
                    steps[name] = steps.get(name, 0.0) + float(value)
    connection.close()
    worker_pids = [p.pid for p in procs]
    (t0, d0), (t1, d1) = marks["lo"], marks["hi"]
    return Drained(seconds, (d1 - d0) / (t1 - t0) if t1 > t0 else float("nan"), loads,
                   watch.used(worker_pids), watch.used() - watch.used(worker_pids), steps)


def load_averages() -> str:
    return "load average " + " / ".join(f"{x:.2f}" for x in os.getloadavg())


def load(account: Any, count: int, seed: int) -> None:
    """Generate and store the events (queued), and print the floors."""
    import json

    from django.db import connection

    from profiles.collection.messages import IncomingEvent
    from profiles.collection.store import store_events

    rng = random.Random(seed)
    start = datetime.now(UTC) - timedelta(hours=7)
    events = make_events(rng, count, start)
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
    assert stored == count, (stored, count)
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
    print(f"floor: stored with store_events at {count / load_seconds:,.0f} events/s; "
          f"INSERT … SELECT of the rows {count / floor_seconds:,.0f} rows/s; {load_averages()}")


def surviving(account: Any) -> int:
    from profiles.models import Profile

    return Profile.objects.filter(account=account, merged_into__isnull=True).count()


_DIGEST = """
SELECT md5(coalesce(string_agg(x, '|' ORDER BY x), '')), count(*) FROM (
    SELECT (SELECT string_agg(i.field || '=' || i.value, ',' ORDER BY i.field, i.value)
            FROM profiles_identifier i WHERE i.profile_id = p.id AND i.active)
        || ':' || p.field_values::text || ':' || p.event_count || ':' || p.conflicts
        || ':' || p.compactions || ':' || p.first_seen || ':' || p.last_seen AS x
    FROM profiles_profile p WHERE p.account_id = %s AND p.merged_into_id IS NULL) t
"""


def digest(account: Any) -> str:
    """What the profiles hold (identifiers, values, counters), whatever their ids: two runs
    over the same events give the same digest."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(_DIGEST, [account.pk])
        return cursor.fetchone()[0][:12]


def rebuild(account: Any, count: int, workers: int, batch: int, url: str, profiles: int
            ) -> None:
    from django.db import connection

    from profiles.processing.rebuild import start_rebuild

    connection.close()
    began = time.perf_counter()
    start_rebuild(account)
    requested = time.perf_counter() - began
    connection.close()
    run = drain(account.pk, count, workers, batch, url)
    total = requested + run.seconds
    after = surviving(account)
    assert after == profiles, (after, profiles)
    print(f"rebuild, {workers} worker{'s' if workers > 1 else ''}: {total:.1f} s for "
          f"{count:,} events (start_rebuild {requested:.1f} s; {run.rate:,.0f} events/s "
          f"sustained)   target <= {300 * count / 1_000_000:.0f} s (5 min per 1 M)\n"
          f"    {run.describe(count)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch", type=int, default=1000, help="process_events --batch")
    parser.add_argument("--seed", type=int, default=4)
    parser.add_argument("--no-rebuild", action="store_true")
    parser.add_argument("--single", action="store_true",
                        help="then a second rebuild with one worker, for comparison")
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    parser.add_argument("--reuse", action="store_true",
                        help="use the database a --keep run left (no loading, no first pass: "
                             "rebuilds only)")
    parser.add_argument("--db-name", default="strata_bench_process",
                        help="the scratch database (dropped and created unless --reuse)")
    args = parser.parse_args()

    base_url = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/strata")
    if args.reuse:
        url = with_database(base_url, args.db_name)
    else:
        url = scratch_database(base_url, args.db_name)
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cdp_site.settings")
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    from cdp_site.models import Account
    from profiles.models import FailedEvent, RawEvent
    from profiles.schema.lytics import install_lytics_schema

    try:
        call_command("migrate", verbosity=0)
        if args.reuse:
            account = Account.objects.get(slug="bench-process")
            args.events = RawEvent.objects.filter(account_id=account.pk).count()
        else:
            account = Account.objects.create(name="Bench Process", slug="bench-process")
            install_lytics_schema(account)
            load(account, args.events, args.seed)
            run = drain(account.pk, args.events, args.workers, args.batch, url)
            failed = FailedEvent.objects.filter(account=account).count()
            print(f"{args.events:,} events, batches of {args.batch}; "
                  f"{surviving(account):,} profiles, {failed} failed events; "
                  f"digest {digest(account)}")
            print(f"processing, {args.workers} workers: {run.rate:,.0f} events/s sustained "
                  f"(5 %..95 %), {run.seconds:.1f} s in all "
                  f"({args.events / run.seconds:,.0f} events/s)   target >= 5,000 events/s\n"
                  f"    {run.describe(args.events)}")
        profiles = surviving(account)
        if not args.no_rebuild:
            rebuild(account, args.events, args.workers, args.batch, url, profiles)
        if args.single:
            rebuild(account, args.events, 1, args.batch, url, profiles)
        if args.reuse:
            print(f"{args.events:,} events; {profiles:,} profiles; digest {digest(account)}")
    finally:
        connection.close()
        if not args.keep:
            drop_database(url)


if __name__ == "__main__":
    main()
