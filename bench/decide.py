"""Benchmark of the decision API: ``POST /api/v1/decide`` beside a bare Django JSON view.

Sets up its own database (dropped and created afresh: ``strata_bench_decide`` on the local
PostgreSQL unless ``--database`` names another), migrates it, and loads with COPY (fixed seed):

- 6 audiences (5 API-accessible), 10 active experiences (built as the decision tests build
  them, ``tests.experiences.decide_helpers``): 5 A/B tests (equal split, custom weights, 50 %
  traffic, targeted at two audiences, a JSON-valued bandit with a reweighting) and 5 segmented
  experiences (three audience variants by priority, the base otherwise);
- 100,000 known visitors: a profile each with a ``_uid`` cookie identifier (``v<p>-<n>``,
  named as the load generator names them) and an email, memberships in each audience with
  probability 0.2, personalization consent granted by half and withheld by 2 %;
- their stored assignments (every A/B test a returning visitor has seen): what
  ``experiences.decide`` would have stored on their first visit.

Then it starts gunicorn in production settings (DEBUG=0; ``bench/collect.py``'s servers and
load generator) twice, the product and ``bench.floor_app`` (the bare Django view, same
settings and gunicorn configuration), and measures in rounds, at ``--connections`` (8):

1. the bare view (``POST /v1/track`` on the floor app, the same request bodies);
2. returning known visitors: ``POST /api/v1/decide {"uid": "v<p>-<n>"}``, each request a
   different visitor, all 10 experiences decided (the visitor query, no writes);
3. new visitors: ``{"uid": "n<round>-<p>-<n>"}``, unknown, each storing its new assignments
   (the visitor query and one INSERT);
4. OFREP bulk for returning visitors: ``POST /ofrep/v1/evaluate/flags``.

Each figure is the best of the rounds (the machine is shared: 2 cores, other jobs), printed
with p50/p99 latency, the ratio to the bare view of the same round, the CPU per request of the
server and of PostgreSQL, and the load average.

Usage:

    .venv/bin/python bench/decide.py [--server gthread:2x4] [--rounds 3] [--seconds 10]
        [--connections 8] [--visitors 100000] [--keep]
"""

from __future__ import annotations

import argparse
import base64
import os
import random
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.collect import (  # noqa: E402
    PEPPER,
    Load,
    Result,
    ServerConfig,
    Watched,
    cpu_use,
    describe,
    drop_database,
    fresh_database,
    load_average,
    run_load,
    say,
    start_server,
    stop_server,
    wait_for_server,
)
from cdp_site.dburl import database_name  # noqa: E402

DEFAULT_DATABASE = "postgres://postgres@127.0.0.1:5432/strata_bench_decide"
AUDIENCES = ["cuisine", "travel", "sports", "tech", "vip"]
MEMBERSHIP_RATE = 0.2
MARK = b"@@UID@@"


# ---- data ----------------------------------------------------------------------------------

def uid_of(n: int, processes: int) -> str:
    """The n-th known visitor's cookie: ``v<process>-<seq>``, as generator process
    ``n % processes`` names its ``n // processes``-th request."""
    return f"v{n % processes}-{n // processes}"


def make_experiences(account: Any) -> list[Any]:
    from audiences.models import Audience
    from experiences.models import Experience
    from tests.experiences.decide_helpers import make_audience, make_experience, reweigh

    audiences = {slug: make_audience(account, slug) for slug in AUDIENCES}
    make_audience(account, "internal-only", api_accessible=False)
    seg = Experience.Type.SEGMENTED
    made = [
        make_experience(account, "hero", ["control", "bold"]),
        make_experience(account, "cta", ["a", "b", "c"], weights=[0.5, 0.25, 0.25]),
        make_experience(account, "pricing", ["control", "cheap"], traffic_allocation=0.5),
        make_experience(account, "recs", ["control", "ml"],
                        target_audiences=[audiences["tech"], audiences["vip"]]),
        make_experience(account, "layout", ["grid", "list", "cards"],
                        distribution=Experience.Distribution.BANDIT,
                        value_type=Experience.ValueType.JSON,
                        values=[{"columns": 3}, {"columns": 1}, {"columns": 2, "dense": True}]),
    ]
    reweigh(made[-1], {"grid": 0.2, "list": 0.5, "cards": 0.3})
    for slug in AUDIENCES:
        others = [other for other in AUDIENCES if other != slug][:2]
        made.append(make_experience(
            account, f"banner-{slug}", ["base", f"{slug}-banner", *(f"{o}-banner" for o in others)],
            type=seg, segments={f"{slug}-banner": (audiences[slug], 1),
                                **{f"{o}-banner": (audiences[o], 2 + i)
                                   for i, o in enumerate(others)}}))
    assert Audience.objects.count() == len(AUDIENCES) + 1
    return made


def _copy(cursor: Any, table: str, columns: str, rows: list[tuple[Any, ...]]) -> None:
    with cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


def load_visitors(account: Any, visitors: int, processes: int, seed: int) -> dict[str, int]:
    """Profiles, identifiers, memberships, consent and stored assignments, with COPY."""
    from django.db import connection

    from audiences.models import Audience
    from experiences.bucketing import assign
    from experiences.config import build_config

    rng = random.Random(seed)
    now = datetime.now(UTC)
    aid = account.pk
    audience_ids = dict(Audience.objects.filter(account=account).values_list("slug", "id"))
    counts = {"profiles": visitors}
    with connection.cursor() as django_cursor:
        cursor = django_cursor.cursor
        cursor.execute("SELECT nextval(pg_get_serial_sequence('profiles_profile', 'id'))")
        first = cursor.fetchone()[0]
        cursor.execute("SELECT setval(pg_get_serial_sequence('profiles_profile', 'id'), %s)",
                       [first + visitors])
        ids = range(first + 1, first + 1 + visitors)
        members: list[set[str]] = [
            {slug for slug in AUDIENCES if rng.random() < MEMBERSHIP_RATE}
            for _ in range(visitors)]
        _copy(cursor, "profiles_profile",
              "id, account_id, states, field_values, first_seen, last_seen, event_count, "
              "conflicts, compactions, identifier_count, size, created_at, updated_at",
              [(pid, aid, "{}", f'{{"n": {n}}}', now, now, 1, 0, 0, 2, 0, now, now)
               for n, pid in enumerate(ids)])
        _copy(cursor, "profiles_identifier",
              "account_id, field, value, profile_id, first_seen, last_seen, active",
              [row for n, pid in enumerate(ids) for row in (
                  (aid, "_uid", uid_of(n, processes), pid, now, now, True),
                  (aid, "email", f"person{n}@example.com", pid, now, now, True))])
        memberships = [(aid, audience_ids[slug], pid, now)
                       for n, pid in enumerate(ids) for slug in sorted(members[n])]
        _copy(cursor, "audiences_audiencemembership", "account_id, audience_id, profile_id, since",
              memberships)
        counts["memberships"] = len(memberships)
        consents = []
        for pid in ids:
            roll = rng.random()
            if roll < 0.02 or roll < 0.52:
                consents.append((aid, pid, "personalization", roll >= 0.02, now))
        _copy(cursor, "profiles_profileconsent", "account_id, profile_id, purpose, granted, at",
              consents)
        counts["consents withheld"] = sum(1 for row in consents if not row[3])
        withheld = {row[1] for row in consents if not row[3]}
        config = build_config(aid)
        assignments = []
        for n, pid in enumerate(ids):
            if pid in withheld:
                continue
            uid = uid_of(n, processes)
            for exp in config.experiences:
                if exp.serve != "split" or (exp.target_audiences
                                            and members[n].isdisjoint(exp.target_audiences)):
                    continue
                index = assign(exp.seed, uid, exp.weights, exp.traffic_allocation,
                               exp.hash_version)
                if index is not None:
                    assignments.append((aid, exp.id, uid, pid, exp.variants[index].id,
                                        exp.phase, "split", now))
        _copy(cursor, "experiences_assignment",
              "account_id, experience_id, visitor, profile_id, variant_id, phase, reason, "
              "assigned_at", assignments)
        counts["assignments"] = len(assignments)
        for table in ("profiles_profile", "profiles_identifier", "audiences_audiencemembership",
                      "profiles_profileconsent", "experiences_assignment"):
            cursor.execute(f"ANALYZE {table}")
    return counts


# ---- the runs ------------------------------------------------------------------------------

def templates(path_body: bytes) -> list[tuple[bytes, ...]]:
    head, _, tail = path_body.partition(MARK)
    return [(head, tail)]


def best(results: list[Result]) -> Result:
    return max(results, key=Result.rate)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", default=os.environ.get("BENCH_DATABASE_URL",
                                                             DEFAULT_DATABASE))
    parser.add_argument("--server", default="gthread:2x4")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--processes", type=int, default=2, help="load generator processes")
    parser.add_argument("--visitors", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=6)
    parser.add_argument("--port", type=int, default=8791)
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = parser.parse_args()
    config = ServerConfig.parse(args.server)

    url = args.database
    fresh_database(url)
    os.environ["DATABASE_URL"] = url
    os.environ["STRATA_TOKEN_PEPPER"] = PEPPER
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cdp_site.settings")
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    from tests.conftest import make_account, make_write_key

    call_command("migrate", verbosity=0)
    account = make_account("Bench Decide", "bench-decide")
    _key, secret = make_write_key(account, "Bench")
    began = time.perf_counter()
    make_experiences(account)
    counts = load_visitors(account, args.visitors, args.processes, args.seed)
    say(f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores, {load_average()}; "
        f"loaded in {time.perf_counter() - began:.0f} s: 10 active experiences, "
        + ", ".join(f"{value:,} {name}" for name, value in counts.items()))
    connection.close()  # the generator processes fork from this one

    auth = base64.b64encode(f"{secret}:".encode()).decode()
    headers = f"Authorization: Basic {auth}\r\n"
    decide_body = templates(b'{"uid":"' + MARK + b'"}')
    ofrep_body = templates(b'{"context":{"targetingKey":"' + MARK + b'"}}')
    database = database_name(url)
    budget = args.visitors  # known visitors: v<p>-<seq>, seq < visitors / processes

    def load(port: int, path: str, bodies: list[tuple[bytes, ...]], prefix: str,
             seconds: float) -> Load:
        return Load(port=port, path=path, headers=headers, templates=bodies, prefix=prefix,
                    connections=args.connections, seconds=seconds, max_requests=budget,
                    processes=args.processes)

    port, floor = args.port, args.port + 1
    servers: list[subprocess.Popen[bytes]] = []
    try:
        say(f"-- {config.label}, {args.connections} connections")
        servers = [start_server("cdp_site.wsgi:application", port, config, url),
                   start_server("bench.floor_app:application", floor, config, url)]
        wait_for_server(port, servers[0])
        wait_for_server(floor, servers[1])
        product, bare_app = (Watched(servers[0].pid, database), Watched(servers[1].pid, database))
        run_load(load(floor, "/v1/track", decide_body, "w", args.warmup), bare_app)
        run_load(load(port, "/api/v1/decide", decide_body, "w", args.warmup), product)
        run_load(load(port, "/ofrep/v1/evaluate/flags", ofrep_body, "w", args.warmup), product)
        figures: dict[str, list[tuple[Result, Result]]] = {"returning": [], "new": [],
                                                           "ofrep": []}
        for n in range(1, args.rounds + 1):
            bare = run_load(load(floor, "/v1/track", decide_body, "v", args.seconds), bare_app)
            say(f"   round {n}: bare view {describe(bare)} ({cpu_use(bare)}); "
                f"{load_average()}")
            runs = {
                "returning": load(port, "/api/v1/decide", decide_body, "v", args.seconds),
                "new": load(port, "/api/v1/decide", decide_body, f"n{n}-", args.seconds),
                "ofrep": load(port, "/ofrep/v1/evaluate/flags", ofrep_body, "v", args.seconds),
            }
            for name, spec in runs.items():
                result = run_load(spec, product)
                figures[name].append((result, bare))
                say(f"   round {n}: {name} {describe(result)} ({cpu_use(result)}); "
                    f"{result.rate() / bare.rate():.0%} of the bare view; {load_average()}")
        labels = {
            "returning": "POST /api/v1/decide, known returning visitors",
            "new": "POST /api/v1/decide, new visitors (assignments stored)",
            "ofrep": "POST /ofrep/v1/evaluate/flags (bulk), known returning visitors",
        }
        for name, pairs in figures.items():
            result, bare = max(pairs, key=lambda pair: pair[0].rate())
            say(f"{labels[name]}, 10 experiences, {args.connections} connections: "
                f"{describe(result)} | floor: bare Django JSON view {describe(bare)} | "
                f"{result.rate() / bare.rate():.0%} of the floor (target >= 2,000 req/s, "
                f"p99 <= 10 ms, >= 60 %) | {load_average()}")
    finally:
        for server in servers:
            stop_server(server)
        if not args.keep:
            drop_database(url)


if __name__ == "__main__":
    main()
