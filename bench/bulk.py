"""Benchmark of the bulk import: events/s for N NDJSON rows beside a raw COPY floor.

Creates a scratch database beside the configured one (``<name>_bench_bulk``; the configured
database is not touched), migrates it and writes N Segment-like NDJSON rows to a temporary file
(fixed seed: the same rows every run). Then, in the same run:

1. the floor: the same rows with one raw COPY (the line as jsonb, no parsing, no dedupe) into a
   plain table without indexes;
2. ``POST /collect/bulk/web`` streaming the file to gunicorn in production settings (DEBUG=0,
   one sync worker) with a Data Manager's token: parsed, checked, deduplicated, COPY through
   the staging table into the partitioned raw store;
3. the same file through ``profiles.bulk.import_events`` in this process (what
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
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

EVENTS = ["Product Viewed", "Product Added", "Order Completed", "Signed Up", "Searched"]
PEPPER = "bench-bulk-pepper"


def say(line: str) -> None:
    print(line, flush=True)


def make_row(rng: random.Random, index: int, at: datetime) -> dict[str, Any]:
    """A Segment-style track/identify message of about 450 bytes."""
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


def scratch_database(base_url: str) -> str:
    import psycopg
    from psycopg import sql

    name = base_url.rsplit("/", 1)[1].split("?")[0] + "_bench_bulk"
    with psycopg.connect(base_url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as conn:
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


def copy_floor(path: Path, account_id: int) -> float:
    """Seconds for one raw COPY of the file's lines into a plain table of the raw store's
    columns (no indexes, no partitions)."""
    from django.db import connection, transaction

    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS bench_copy_floor")
        cursor.execute("CREATE TABLE bench_copy_floor (account_id bigint, stream text, "
                       "message_id text, received_at timestamptz, event_at timestamptz, "
                       "source text, message jsonb)")
    now = datetime.now(UTC)
    began = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor, path.open("rb") as source, \
            cursor.cursor.copy("COPY bench_copy_floor FROM STDIN") as copy:
        for index, line in enumerate(source):
            copy.write_row((account_id, "web", index, now, now, "bench", line[:-1].decode()))
    return time.perf_counter() - began


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

    base_url = os.environ.get("DATABASE_URL")
    if not base_url:
        from cdp_site.embedded_db import start_embedded_server

        base_url = start_embedded_server(ROOT / "var" / "pgdata")
    url = scratch_database(base_url)
    os.environ["DATABASE_URL"] = url
    os.environ["STRATA_TOKEN_PEPPER"] = PEPPER
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cdp_site.settings")
    import django

    django.setup()
    import requests
    from django.core.management import call_command
    from django.db import connection

    from profiles import bulk
    from profiles.models import RawEvent
    from profiles.partitions import ensure_partitions
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

            floor = copy_floor(path, http_account.pk)
            say(f"floor: raw COPY into a plain table: {floor:.1f} s, "
                  f"{args.rows / floor:,.0f} rows/s")

            server = start_server(url, args.port)
            wait_for_server(args.port)
            began = time.perf_counter()
            with path.open("rb") as body:
                response = requests.post(
                    f"http://127.0.0.1:{args.port}/collect/bulk/web?message_id_field=messageId",
                    data=body, timeout=1800,
                    headers={"Authorization": f"Bearer {secret}",
                             "Content-Type": "application/x-ndjson"})
            seconds = time.perf_counter() - began
            summary = response.json()
            assert response.status_code == 200, summary
            assert summary["stored"] == args.rows, summary
            say(f"POST /collect/bulk (gunicorn, DEBUG=0): {seconds:.1f} s, "
                  f"{args.rows / seconds:,.0f} events/s = {floor / seconds:.0%} of the floor")

            began = time.perf_counter()
            with path.open("rb") as source:
                local = bulk.import_events(local_account, "web", bulk.read_chunks(source),
                                           fmt=bulk.NDJSON, source="import")
            seconds = time.perf_counter() - began
            assert local.stored == args.rows, local
            say(f"import_events in-process: {seconds:.1f} s, "
                  f"{args.rows / seconds:,.0f} events/s = {floor / seconds:.0%} of the floor")
            assert RawEvent.objects.count() == 2 * args.rows
            say(f"load average {os.getloadavg()[0]:.2f}")
        finally:
            if server is not None:
                server.terminate()
                server.wait(timeout=30)
            connection.close()
            if not args.keep:
                drop_database(url)


if __name__ == "__main__":
    main()
