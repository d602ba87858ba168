"""Benchmark of the bulk import: events/s for N NDJSON rows beside a raw COPY floor.

Creates a scratch database beside the configured one (``<name>_bench_bulk``; the configured
database is not touched), migrates it and writes N Segment-like NDJSON rows to a temporary file
(fixed seed: the same rows every run). Then, in the same run:

1. the floor: the same rows with one raw COPY (the line as jsonb, no parsing, no dedupe) into a
   plain table without indexes, before and after the two runs below (their mean is the floor);
2. ``POST /collect/bulk/web`` streaming the file to gunicorn in production settings (DEBUG=0,
   one sync worker) with a Data Manager's token: parsed, checked, deduplicated, COPY through
   the staging table into the partitioned raw store;
3. the same file through ``profiles.collection.bulk.import_events`` in this process (what
   ``manage.py import_events`` runs), into a second account.

Usage:

    .venv/bin/python bench/bulk.py [--rows 1000000] [--seed 7] [--port 8765] [--keep]

DATABASE_URL picks the server (default: the embedded one in var/pgdata).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import drop_database, scratch_database, server_url  # noqa: E402
from cdp_site.dburl import database_name  # noqa: E402

EVENTS = ["Product Viewed", "Product Added", "Order Completed", "Signed Up", "Searched"]
PEPPER = "bench-bulk-pepper"


def say(line: str) -> None:
    print(line, flush=True)


def make_row(rng: random.Random, index: int, at: datetime) -> dict[str, Any]:
    """A Segment-style track/identify message of about 350 bytes."""
    stamp = at.isoformat().replace("+00:00", "Z")
    row: dict[str, Any] = {
        "messageId": f"bulk-{index}",
        "anonymousId": str(uuid.UUID(int=rng.getrandbits(128))),
        "userId": f"user-{rng.randint(1, 100_000)}",
        "timestamp": stamp,
        "context": {"ip": f"10.{rng.randint(0, 255)}.{rng.randint(0, 255)}.7",
                    "locale": rng.choice(["en-US", "de-DE", "fr-FR"]),
                    "page": {"path": f"/p/{rng.randint(1, 400)}", "referrer": ""}},
    }
    if rng.random() < 0.1:
        row.update(type="identify", traits={"email": f"p{rng.randint(1, 100_000)}@example.com",
                                            "plan": rng.choice(["free", "pro"])})
    else:
        row.update(type="track", event=rng.choice(EVENTS), properties={
            "product_id": f"sku-{rng.randint(1, 5_000)}",
            "price": round(rng.uniform(1, 300), 2), "quantity": rng.randint(1, 5),
            "currency": "USD", "tags": ["autumn", "sale"][: rng.randint(0, 2)]})
    return row


def write_rows(path: Path, rows: int, seed: int) -> int:
    rng = random.Random(seed)
    start = datetime(2025, 1, 1, tzinfo=UTC)
    with path.open("wb") as out:
        for index in range(rows):
            at = start + timedelta(seconds=index)
            out.write(json.dumps(make_row(rng, index, at), separators=(",", ":")).encode())
            out.write(b"\n")
    return path.stat().st_size


@dataclass
class Measured:
    """Wall time, and the CPU the application process and its PostgreSQL backend used (CPU is
    less sensitive than wall time to other work on a shared machine)."""

    seconds: float
    app_cpu: float
    db_cpu: float

    def line(self, rows: int, what: str = "events") -> str:
        return (f"{self.seconds:.1f} s, {rows / self.seconds:,.0f} {what}/s; CPU per 1,000 "
                f"{what}: {self.app_cpu / rows * 1e6:.0f} ms app + "
                f"{self.db_cpu / rows * 1e6:.0f} ms PostgreSQL")


def cpu_seconds(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


def measure(app_pid: int, db_pid: int, work: Callable[[], Any]) -> Measured:
    app, db, began = cpu_seconds(app_pid), cpu_seconds(db_pid), time.perf_counter()
    work()
    return Measured(time.perf_counter() - began, cpu_seconds(app_pid) - app,
                    cpu_seconds(db_pid) - db)


def own_backend() -> int:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return int(cursor.fetchone()[0])


def copy_floor(path: Path, account_id: int) -> Measured:
    """One raw COPY of the file's lines into a plain table of the raw store's columns (no
    indexes, no partitions, no parsing)."""
    from django.db import connection, transaction

    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS bench_copy_floor")
        cursor.execute("CREATE TABLE bench_copy_floor (account_id bigint, stream text, "
                       "message_id text, received_at timestamptz, event_at timestamptz, "
                       "source text, message jsonb)")
    now = datetime.now(UTC)

    def work() -> None:
        with transaction.atomic(), connection.cursor() as cursor, path.open("rb") as source, \
                cursor.cursor.copy("COPY bench_copy_floor FROM STDIN") as copy:
            for index, line in enumerate(source):
                copy.write_row((account_id, "web", index, now, now, "bench",
                                line[:-1].decode()))

    return measure(os.getpid(), own_backend(), work)


def start_server(url: str, port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "DATABASE_URL": url, "DEBUG": "0", "SECRET_KEY": "bench-" + "k" * 50,
           "ALLOWED_HOSTS": "127.0.0.1", "STRATA_TOKEN_PEPPER": PEPPER,
           "SECURE_SSL_REDIRECT": "false", "LOG_LEVEL": "WARNING"}
    return subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "cdp_site.wsgi:application", "--bind",
         f"127.0.0.1:{port}", "--workers", "1", "--timeout", "900"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )


def wait_for_server(port: int) -> None:
    import requests

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            requests.get(f"http://127.0.0.1:{port}/health/", timeout=5)
            return
        except requests.RequestException:
            time.sleep(0.3)
    raise SystemExit("gunicorn did not answer within 60 s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    args = parser.parse_args()

    base_url = server_url()
    url = scratch_database(base_url, database_name(base_url) + "_bench_bulk")
    os.environ["DATABASE_URL"] = url
    os.environ["STRATA_TOKEN_PEPPER"] = PEPPER
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cdp_site.settings")
    import django

    django.setup()
    import requests
    from django.core.management import call_command
    from django.db import connection

    from profiles.collection import bulk
    from profiles.collection.partitions import ensure_partitions
    from profiles.models import RawEvent
    from tests.conftest import make_account, make_token

    server = None
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "events.ndjson"
        try:
            call_command("migrate", verbosity=0)
            http_account = make_account("Bench HTTP", "bench-http")
            local_account = make_account("Bench Local", "bench-local")
            ensure_partitions(account_ids=[http_account.pk, local_account.pk])
            secret = make_token(http_account, ["data_manager"])[1]
            size = write_rows(path, args.rows, args.seed)
            say(f"{args.rows:,} NDJSON rows, {size / 1024 / 1024:,.0f} MB (seed {args.seed})")

            before = copy_floor(path, http_account.pk)
            say("floor, raw COPY into a plain table (before): " + before.line(args.rows, "rows"))

            server = start_server(url, args.port)
            wait_for_server(args.port)
            endpoint = f"http://127.0.0.1:{args.port}/collect/bulk/web"
            headers = {"Authorization": f"Bearer {secret}", "Content-Type": "application/x-ndjson"}
            warm = requests.post(endpoint, data=b'{"messageId": "warm-up"}\n', headers=headers,
                                 timeout=60)  # opens the worker's database connection
            assert warm.status_code == 200, warm.text
            worker = psutil.Process(server.pid).children()[0].pid
            with connection.cursor() as cursor:
                cursor.execute("SELECT pid FROM pg_stat_activity WHERE datname = "
                               "current_database() AND backend_type = 'client backend' AND "
                               "pid <> pg_backend_pid()")
                backends = [row[0] for row in cursor.fetchall()]
            assert len(backends) == 1, backends

            answers: list[Any] = []

            def post() -> None:
                with path.open("rb") as body:
                    answers.append(requests.post(endpoint, data=body, headers=headers,
                                                 params={"message_id_field": "messageId"},
                                                 timeout=1800))

            http = measure(worker, backends[0], post)
            assert answers[0].status_code == 200, answers[0].text
            assert answers[0].json()["stored"] == args.rows, answers[0].text

            def local() -> None:
                with path.open("rb") as source:
                    summary = bulk.import_events(local_account, "web", bulk.read_chunks(source),
                                                 fmt=bulk.NDJSON, source="import")
                assert summary.stored == args.rows, summary

            in_process = measure(os.getpid(), own_backend(), local)
            after = copy_floor(path, http_account.pk)
            say("floor, raw COPY into a plain table (after): " + after.line(args.rows, "rows"))
            floor = (before.seconds + after.seconds) / 2
            say(f"POST /collect/bulk (gunicorn, DEBUG=0): {http.line(args.rows)}; "
                f"{floor / http.seconds:.0%} of the floor")
            say(f"import_events in-process: {in_process.line(args.rows)}; "
                f"{floor / in_process.seconds:.0%} of the floor")
            assert RawEvent.objects.count() == 2 * args.rows + 1
            say(f"load average {os.getloadavg()[0]:.2f} (2 cores; the floor is the mean of the "
                "two floor runs)")
        finally:
            if server is not None:
                server.terminate()
                server.wait(timeout=30)
            connection.close()
            if not args.keep:
                drop_database(url)


if __name__ == "__main__":
    main()
