"""Benchmark of the connectors: an audience export to a local webhook beside a bare
SELECT-and-POST loop of the same rows in the same run, and webhook enrichment held to its
rate limit.

Sets up its own database (``strata_connbench`` on the server DATABASE_URL names, dropped and
created afresh), migrates it, and generates in SQL N profiles (default 100,000) each with an
email identifier, all members of one audience. A local receiver (``ThreadingHTTPServer`` on
127.0.0.1, allowlisted for the account) parses each body and counts the changes.

1. floor: one SELECT of the members with their email (the same join the export reads), then
   batches of 1,000 changes in the export's message shape, serialized with orjson and POSTed
   by a bare loop over one keep-alive connection;
2. the product: an ``audience_webhook`` job (batches of 1,000, email identifiers, signed),
   run by ``connectors.runner.run_job`` end to end: reads, consent, delivery, the saved
   cursor and delivered state per batch;
3. enrichment: a ``webhook_enrichment`` job at ``--rate`` calls/s over ``--calls`` profiles
   against the same receiver; the achieved rate beside the limit.

Usage: .venv/bin/python bench/connectors.py [--profiles 100000] [--rate 50] [--calls 250]
"""

from __future__ import annotations

import argparse
import http.client
import os
import sys
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import orjson  # noqa: E402

from bench.common import fresh_database  # noqa: E402

DEFAULT_DATABASE = "postgres://postgres@127.0.0.1:5432/strata_connbench"
BATCH = 1000


def say(line: str) -> None:
    print(line, flush=True)


def load() -> str:
    return "load {:.1f} {:.1f} {:.1f}".format(*os.getloadavg())


class Counter:
    def __init__(self) -> None:
        self.changes = 0
        self.requests = 0
        self.lock = threading.Lock()


def start_receiver(counter: Counter) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _answer(self, body: bytes) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:
            data = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            changes = len(orjson.loads(data).get("changes", ())) if data else 0
            with counter.lock:
                counter.changes += changes
                counter.requests += 1
            self._answer(b"{}")

        def do_GET(self) -> None:
            with counter.lock:
                counter.requests += 1
            self._answer(b'{"loyalty_tier": "Gold"}')

        def log_message(self, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def generate(account_id: int, audience_id: int, count: int, now: datetime) -> None:
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute("""
            INSERT INTO profiles_profile (account_id, states, field_values, first_seen,
                last_seen, event_count, conflicts, compactions, identifier_count, size,
                created_at, updated_at)
            SELECT %(a)s, '{}', jsonb_build_object('email', 'person' || g || '@example.com',
                'loyalty_tier', 'Gold'), %(now)s, %(now)s, 0, 0, 0, 1, 0, %(now)s, %(now)s
            FROM generate_series(1, %(n)s) g""", {"a": account_id, "n": count, "now": now})
        cur.execute("""
            INSERT INTO profiles_identifier (account_id, field, value, profile_id, first_seen,
                last_seen, active)
            SELECT %(a)s, 'email', field_values->>'email', id, %(now)s, %(now)s, true
            FROM profiles_profile WHERE account_id = %(a)s""", {"a": account_id, "now": now})
        cur.execute("""
            INSERT INTO audiences_audiencemembership (account_id, audience_id, profile_id, since)
            SELECT %(a)s, %(aud)s, id, %(now)s FROM profiles_profile WHERE account_id = %(a)s
            """, {"a": account_id, "aud": audience_id, "now": now})
        cur.execute("ANALYZE")


def floor(audience_id: int, port: int, now: datetime) -> tuple[int, float]:
    """The same rows read by one SELECT and POSTed by a bare loop."""
    from django.db import connection

    started = time.perf_counter()
    with connection.cursor() as cur:
        cur.execute("""
            SELECT m.profile_id, i.value FROM audiences_audiencemembership m
            LEFT JOIN profiles_identifier i ON i.profile_id = m.profile_id
                AND i.field = 'email' AND i.active
            WHERE m.audience_id = %s ORDER BY m.profile_id""", [audience_id])
        rows = cur.fetchall()
    conn = http.client.HTTPConnection("127.0.0.1", port)
    stamp = now.isoformat()
    for start in range(0, len(rows), BATCH):
        changes = [{"action": "add", "profile_id": pid,
                    "identifiers": {"email": [email]} if email else {}, "fields": {},
                    "at": stamp} for pid, email in rows[start:start + BATCH]]
        body = orjson.dumps({"type": "audience.membership",
                             "audience": {"id": audience_id}, "changes": changes})
        conn.request("POST", "/floor", body=body, headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        response.read()
        assert response.status == 200
    conn.close()
    return len(rows), time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profiles", type=int, default=100_000)
    parser.add_argument("--rate", type=float, default=50.0)
    parser.add_argument("--calls", type=int, default=250)
    parser.add_argument("--database", default=DEFAULT_DATABASE)
    args = parser.parse_args()

    fresh_database(args.database)
    os.environ["DATABASE_URL"] = args.database
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cdp_site.settings")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    import django

    django.setup()
    from django.core.management import call_command

    from audiences.models import Audience
    from cdp_site.models import Account
    from connectors import authorizations
    from connectors.jobs import create_job
    from connectors.models import ConnectorSettings
    from connectors.runner import run_job

    call_command("migrate", verbosity=0)
    say(f"bench/connectors.py: {args.profiles:,} members, batches of {BATCH}; {load()}")
    now = datetime.now(UTC).replace(microsecond=0)
    account = Account.objects.create(name="Connector bench", slug="connector-bench")
    ConnectorSettings.objects.create(account=account, outbound_allowlist=["127.0.0.1"])
    audience = Audience.objects.create(account=account, slug="gold", name="Gold",
                                       rule={"field": "loyalty_tier", "op": "=",
                                             "value": "Gold"})
    started = time.perf_counter()
    generate(account.pk, audience.pk, args.profiles, now)
    say(f"generated in {time.perf_counter() - started:.1f} s")

    counter = Counter()
    server = start_receiver(counter)
    port = server.server_address[1]
    base = f"http://127.0.0.1:{port}/"
    auth = authorizations.create_authorization(account, None, name="Receiver", kind="http",
                                               base_url=base).obj

    rows, seconds = floor(audience.pk, port, now)
    floor_rate = rows / seconds
    say(f"floor: SELECT + bare POST loop: {rows:,} in {seconds:.2f} s = "
        f"{floor_rate:,.0f} profiles/s; {load()}")

    job = create_job(account, None, name="Export", kind="audience_webhook",
                     authorization_id=auth.pk,
                     config={"audience": "gold", "path": "export", "batch_size": BATCH,
                             "identifiers": ["email"]})
    before = counter.changes
    started = time.perf_counter()
    run = run_job(job.pk)
    seconds = time.perf_counter() - started
    assert run is not None and run.outcome == "synced", run and run.outcome
    delivered = counter.changes - before
    assert delivered == args.profiles == run.added, (delivered, run.added)
    rate = delivered / seconds
    say(f"export: audience_webhook job: {delivered:,} in {seconds:.2f} s = {rate:,.0f} "
        f"profiles/s ({rate / floor_rate:.0%} of the floor); {load()}")

    enrich_audience = Audience.objects.create(account=account, slug="sample", name="Sample",
                                              rule={"field": "loyalty_tier", "op": "=",
                                                    "value": "Gold"})
    from audiences.models import AudienceMembership

    first_ids = list(AudienceMembership.objects.filter(audience=audience)
                     .order_by("profile_id").values_list("profile_id", flat=True)
                     [:args.calls])
    AudienceMembership.objects.bulk_create([
        AudienceMembership(account=account, audience=enrich_audience, profile_id=pid)
        for pid in first_ids])
    enrich = create_job(account, None, name="Enrich", kind="webhook_enrichment",
                        authorization_id=auth.pk,
                        config={"audience": "sample", "identifier": "email",
                                "url": "crm/{value}", "stream": "crm",
                                "rate_per_second": args.rate, "batch_size": 100})
    before = counter.requests
    started = time.perf_counter()
    run = run_job(enrich.pk)
    seconds = time.perf_counter() - started
    calls = counter.requests - before
    assert run is not None and run.added == calls == args.calls, (run and run.added, calls)
    achieved = (calls - 1) / seconds  # n calls span n - 1 intervals
    say(f"enrichment: {calls} calls in {seconds:.2f} s = {achieved:.2f} calls/s at a limit of "
        f"{args.rate:g}/s ({achieved / args.rate - 1:+.1%}); {load()}")
    server.shutdown()


if __name__ == "__main__":
    main()
