"""Benchmark of audiences: batch membership, real-time re-evaluation and event → membership
latency, each beside hand-written SQL for the same rule in the same run.

Sets up its own database (``strata_audbench`` on the server DATABASE_URL names; dropped and
created afresh unless ``--reuse``), migrates it, installs the Lytics use-case schema plus
``country``, ``lifetime_value`` (number), ``signup_date`` (date) and ``newsletter`` (bool), and
generates in SQL (``INSERT … SELECT generate_series`` after ``setseed``: the same rows every
run, relative to the run's start):

- N profiles (default 1,000,000): taxonomy (12 values, 90 %), loyalty_tier (40 %, Bronze to
  Platinum), preferred_activities (40 %, 1 to 3 of 10), email (60 %, five domains), country
  (95 %, skewed), lifetime_value (50 %), signup_date (the last 3 years), newsletter, _uid;
- M profile events (default 5,000,000) over 90 days, skewed towards some profiles: page_view
  (with taxonomy), product_viewed, added_to_cart (sku, price), checkout_started, purchase
  (revenue), login, newsletter_signup;
- 50 audiences: the first 10 on profile fields, a behavioural one (``added_to_cart`` in the
  last 7 days and no ``purchase`` in the last 7 days), one on frequency (3+ page views in 30
  days), the rest on fields.

Then it measures, best and median of ``--rounds``:

1. one field audience (``taxonomy = "cuisine"``): hand-written SQL count, the compiled rule's
   bare count (``compile_sql``, what ``estimate_size`` runs), and the product's computation
   (``membership.compute_audiences``: the pass with its membership diff, changes, sizes),
   first from empty membership and then again with nothing changed;
2. ten field audiences: one hand-written pass (``count(*) FILTER`` per rule), the compiled
   one-pass count (``membership.select_members``, what ``compute_pass`` selects), the
   product's computation in one pass (its default), and again each in its own statement;
3. the behavioural rule over the events: hand-written set SQL, compiled count, computation;
4. real time: compiling the 50 audiences (``realtime.account_state``), the predicate part per
   profile (``realtime.evaluate_profiles`` over loaded data, every audience evaluated), and the
   whole pipeline step for one profile with its queries (``realtime.evaluate``);
5. event → membership change: ``collect.store_events`` at a steady ``--rate`` (1,000 events/s)
   for ``--seconds`` while ``manage.py process_events --loop`` workers run (as ``manage.py
   serve`` runs them); latency from the event's ``received_at`` to its ``MembershipChange.at``
   (the batch's clock) and to the moment the change was seen committed (polled every 20 ms),
   after a warm-up (20 events processed: the workers started, the audiences compiled). Use a
   rate below one a second (``--rate 0.4 --seconds 150``) for an idle system: each event finds
   the worker idle (a second after its last events), so the figure is how fast it wakes
   (LISTEN/NOTIFY, profiles.processing.wakeup).

The load average is printed beside every figure (the machine is shared). Usage:

    .venv/bin/python bench/audiences.py [--profiles 1000000] [--events 5000000]
        [--rounds 3] [--rate 1000] [--seconds 30] [--workers 1] [--reuse] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import fresh_database  # noqa: E402
from cdp_site.dburl import database_name  # noqa: E402

DEFAULT_DATABASE = "postgres://postgres@127.0.0.1:5432/strata_audbench"
ACCOUNT_SLUG = "bench-audiences"
SEED = 0.42

TAXONOMY = ["news", "sports", "travel", "cuisine", "tech", "fashion", "finance", "health",
            "music", "movies", "outdoors", "home"]
TIERS = ["Bronze", "Silver", "Gold", "Platinum"]
ACTIVITIES = ["Parasailing", "Hiking", "Snorkeling", "Kayaking", "Golf", "Spa", "Cycling",
              "Skiing", "Surfing", "Yoga"]
COUNTRIES = ["US", "GB", "DE", "FR", "CA", "ES", "IT", "BR", "JP", "AU", "NL", "SE", "MX",
             "IN", "PL", "BE", "CH", "AT", "IE", "NZ"]
DOMAINS = ["gmail.com", "yahoo.com", "example.com", "outlook.com", "company.org"]
EXTRA_FIELDS = [  # name, type, merge operator, web mapping
    ("country", "string", "latest", "properties.country"),
    ("lifetime_value", "number", "latest", "properties.lifetime_value"),
    ("signup_date", "date", "latest", None),
    ("newsletter", "bool", "latest", None),
]
WORKER_ENV = {"DEBUG": "0", "SECRET_KEY": "bench-" + "k" * 50, "ALLOWED_HOSTS": "127.0.0.1",
              "STRATA_TOKEN_PEPPER": "bench-pepper", "LOG_LEVEL": "WARNING"}


def say(line: str) -> None:
    print(line, flush=True)


def load() -> str:
    return "load {:.1f} {:.1f} {:.1f}".format(*os.getloadavg())


# ---- data --------------------------------------------------------------------------------------

def _text_array(values: list[str]) -> str:
    return "ARRAY[" + ", ".join(f"'{v}'" for v in values) + "]"


_PROFILES = f"""
INSERT INTO profiles_profile (id, account_id, states, field_values, first_seen, last_seen,
    event_count, conflicts, compactions, identifier_count, size, created_at, updated_at)
SELECT %(first)s + g, %(account)s, '{{}}', jsonb_strip_nulls(jsonb_build_object(
    '_uid', jsonb_build_array('c' || g),
    'email', CASE WHEN r[1] < 0.6 THEN 'person' || g || '@'
        || ({_text_array(DOMAINS)})[1 + floor(r[2] * 5)::int] END,
    'taxonomy', CASE WHEN r[3] < 0.9
        THEN ({_text_array(TAXONOMY)})[1 + floor(r[4] * 12)::int] END,
    'loyalty_tier', CASE WHEN r[5] < 0.4 THEN CASE WHEN r[6] < 0.5 THEN 'Bronze'
        WHEN r[6] < 0.8 THEN 'Silver' WHEN r[6] < 0.95 THEN 'Gold' ELSE 'Platinum' END END,
    'preferred_activities', CASE WHEN r[7] < 0.4 THEN (
        SELECT jsonb_agg(a ORDER BY a) FROM unnest({_text_array(ACTIVITIES)}) WITH ORDINALITY
            AS t(a, i)
        WHERE i = 1 + floor(r[8] * 10)::int
           OR (r[9] < 0.6 AND i = 1 + floor(r[10] * 10)::int)
           OR (r[9] < 0.2 AND i = 1 + floor(r[11] * 10)::int)) END,
    'country', CASE WHEN r[12] < 0.95
        THEN ({_text_array(COUNTRIES)})[1 + floor(power(r[13], 2) * 20)::int] END,
    'lifetime_value', CASE WHEN r[14] < 0.5 THEN round((power(r[15], 3) * 5000)::numeric, 2) END,
    'signup_date', to_char((%(now)s::timestamptz - r[16] * interval '1095 days')
        AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
    'newsletter', r[17] < 0.3)),
    %(now)s::timestamptz - interval '1095 days', %(now)s, 0, 0, 0, 1, 0, %(now)s, %(now)s
FROM (SELECT g, ARRAY[random(), random(), random(), random(), random(), random(), random(),
                      random(), random(), random(), random(), random(), random(), random(),
                      random(), random(), random()] AS r
      FROM generate_series(1, %(count)s) AS g) AS rows
"""  # noqa: S608 (constants of this file)

_EVENTS = f"""
INSERT INTO profiles_profileevent (account_id, profile_id, raw_event_id, stream, event, at,
                                   properties)
SELECT %(account)s, %(first)s + 1 + least(floor(power(r1, 2) * %(profiles)s)::bigint,
                                          %(profiles)s - 1),
    g, 'web', name, %(now)s::timestamptz - r3 * interval '90 days',
    CASE name
        WHEN 'page_view' THEN jsonb_build_object(
            'taxonomy', ({_text_array(TAXONOMY)})[1 + floor(r4 * 12)::int],
            'path', '/a/' || floor(r4 * 5000)::int)
        WHEN 'product_viewed' THEN jsonb_build_object('sku', 'SKU-' || floor(r4 * 2000)::int)
        WHEN 'added_to_cart' THEN jsonb_build_object(
            'sku', 'SKU-' || floor(r4 * 2000)::int, 'price', round((r4 * 200)::numeric, 2))
        WHEN 'purchase' THEN jsonb_build_object(
            'order_id', 'o' || g, 'revenue', round((r4 * 400)::numeric, 2))
        ELSE '{{}}'::jsonb END
FROM (SELECT g, r1, r3, r4, CASE WHEN r2 < 0.62 THEN 'page_view'
                                 WHEN r2 < 0.80 THEN 'product_viewed'
                                 WHEN r2 < 0.88 THEN 'added_to_cart'
                                 WHEN r2 < 0.91 THEN 'checkout_started'
                                 WHEN r2 < 0.93 THEN 'purchase'
                                 WHEN r2 < 0.98 THEN 'login'
                                 ELSE 'newsletter_signup' END AS name
      FROM (SELECT g, random() AS r1, random() AS r2, random() AS r3, random() AS r4
            FROM generate_series(1, %(count)s) AS g) AS raw) AS rows
"""  # noqa: S608 (constants of this file)


def _without_indexes(cur: Any, table: str, fill: Callable[[], None]) -> None:
    """Fill a table with its secondary indexes dropped, then build them again from their
    own definitions (a bulk load is several times faster than maintaining them row by row)."""
    cur.execute("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = %s AND indexname "
                "NOT IN (SELECT conname FROM pg_constraint)", [table])
    indexes = cur.fetchall()
    for name, _ in indexes:
        cur.execute(f'DROP INDEX "{name}"')
    fill()
    for _, definition in indexes:
        cur.execute(definition)


def setup_account(now: datetime) -> Any:
    from cdp_site.models import Account
    from profiles.schema.drafts import save_field, save_mapping
    from profiles.schema.lytics import install_lytics_schema
    from profiles.schema.versions import publish

    account = Account.objects.create(name="Bench Audiences", slug=ACCOUNT_SLUG)
    install_lytics_schema(account, publish_now=False)
    for name, type_, operator, expression in EXTRA_FIELDS:
        field = save_field(account, name=name, type=type_, merge_operator=operator)
        if expression:
            save_mapping(account, field=field, stream="web", expression=expression)
    publish(account)
    return account


def generate(account: Any, profiles: int, events: int, now: datetime) -> int:
    """Profiles and events (fixed seed); the first profile id - 1."""
    from django.db import connection, transaction

    with transaction.atomic(), connection.cursor() as cur:
        cur.execute("SET LOCAL max_parallel_workers_per_gather = 0")  # one ordered random()
        cur.execute("SET LOCAL synchronous_commit = off")
        cur.execute("SET CONSTRAINTS ALL IMMEDIATE")  # no pending checks before CREATE INDEX
        cur.execute("SELECT coalesce(max(id), 0) FROM profiles_profile")
        first = cur.fetchone()[0] + 1000
        params = {"first": first, "account": account.pk, "now": now, "count": profiles,
                  "profiles": profiles}
        began = time.perf_counter()
        cur.execute("SELECT setseed(%s)", [SEED])
        _without_indexes(cur, "profiles_profile", lambda: cur.execute(_PROFILES, params))
        cur.execute("SELECT setval(pg_get_serial_sequence('profiles_profile', 'id'), %s)",
                    [first + profiles + 1])
        made_profiles = time.perf_counter() - began
        began = time.perf_counter()
        cur.execute("SELECT setseed(%s)", [SEED / 2])
        _without_indexes(cur, "profiles_profileevent",
                         lambda: cur.execute(_EVENTS, {**params, "count": events}))
        made_events = time.perf_counter() - began
    with connection.cursor() as cur:
        for table in ("profiles_profile", "profiles_profileevent"):
            cur.execute(f"VACUUM ANALYZE {table}")
        cur.execute("SELECT pg_size_pretty(pg_total_relation_size('profiles_profile')), "
                    "pg_size_pretty(pg_total_relation_size('profiles_profileevent'))")
        sizes = cur.fetchone()
    say(f"generated {profiles:,} profiles in {made_profiles:.1f} s, {events:,} events in "
        f"{made_events:.1f} s (tables {sizes[0]} / {sizes[1]}); {load()}")
    return first


# ---- audiences -------------------------------------------------------------------------------

def f(field: str, op: str, value: Any = None) -> dict[str, Any]:
    node: dict[str, Any] = {"field": field, "op": op}
    if value is not None:
        node["value"] = value
    return node


# slug, rule, hand-written condition over profiles_profile p (%(now)s, %(since30)s bound)
TEN: list[tuple[str, dict[str, Any], str]] = [
    ("cuisine", f("taxonomy", "=", "cuisine"),
     "lower(p.field_values ->> 'taxonomy') = 'cuisine'"),
    ("gold", f("loyalty_tier", "=", "Gold"),
     "lower(p.field_values ->> 'loyalty_tier') = 'gold'"),
    ("parasailing", f("preferred_activities", "contains", "Parasailing"),
     "EXISTS (SELECT 1 FROM jsonb_array_elements_text(p.field_values -> "
     "'preferred_activities') a WHERE lower(a) = 'parasailing')"),
    ("high-value", f("lifetime_value", ">", 1000),
     "(p.field_values -> 'lifetime_value')::numeric > 1000"),
    ("north-america", f("country", "in", ["US", "CA"]),
     "lower(p.field_values ->> 'country') IN ('us', 'ca')"),
    ("has-email", f("email", "exists"), "p.field_values ? 'email'"),
    ("recent-signups", f("signup_date", ">=", "now-30d"),
     "p.field_values ->> 'signup_date' >= %(since30)s"),
    ("gmail", f("email", "like", "*@gmail.com"),
     "lower(p.field_values ->> 'email') LIKE '%%@gmail.com'"),
    ("gold-travel", {"and": [f("loyalty_tier", "in", ["Gold", "Platinum"]),
                             f("taxonomy", "=", "travel")]},
     "lower(p.field_values ->> 'loyalty_tier') IN ('gold', 'platinum') "
     "AND lower(p.field_values ->> 'taxonomy') = 'travel'"),
    ("anonymous-sports", {"and": [f("email", "not exists"), f("taxonomy", "=", "sports")]},
     "NOT (p.field_values ? 'email') AND lower(p.field_values ->> 'taxonomy') = 'sports'"),
]
BEHAVIOURAL = ("cart-abandoners", {"and": [
    {"event": "added_to_cart", "within_days": 7},
    {"not": {"event": "purchase", "within_days": 7}}]})
HAND_BEHAVIOURAL = """
SELECT count(*) FROM profiles_profile p
WHERE p.account_id = %(account)s AND p.merged_into_id IS NULL AND p.id IN (
    SELECT profile_id FROM profiles_profileevent
    WHERE account_id = %(account)s AND event = 'added_to_cart' AND at >= %(since7)s
    EXCEPT
    SELECT profile_id FROM profiles_profileevent
    WHERE account_id = %(account)s AND event = 'purchase' AND at >= %(since7)s)
"""
FREQUENT = ("frequent-readers", {"event": "page_view", "min_count": 3, "within_days": 30})


def fifty() -> list[tuple[str, dict[str, Any]]]:
    rules = [(slug, rule) for slug, rule, _ in TEN] + [BEHAVIOURAL, FREQUENT]
    rules += [(f"tax-{t}", f("taxonomy", "=", t)) for t in TAXONOMY if t != "cuisine"]
    rules += [(f"country-{c.lower()}", f("country", "=", c)) for c in COUNTRIES[:10]]
    rules += [(f"likes-{a.lower()}", f("preferred_activities", "contains", a))
              for a in ACTIVITIES[1:8]]
    rules += [(f"ltv-over-{n}", f("lifetime_value", ">=", n)) for n in (100, 500, 2500)]
    rules += [(f"tier-{t.lower()}", f("loyalty_tier", "=", t)) for t in ("Bronze", "Silver")]
    rules += [("newsletter", f("newsletter", "=", True)),
              ("signed-up-this-year", f("signup_date", ">=", "now-1y")),
              ("gold-or-parasailing", {"or": [f("loyalty_tier", "=", "Gold"),
                                              f("preferred_activities", "contains",
                                                "Parasailing")]}),
              ("not-gold", {"not": f("loyalty_tier", "=", "Gold")}),
              ("yahoo-news", {"and": [f("email", "like", "*@yahoo.com"),
                                      f("taxonomy", "in", ["news", "finance"])]})]
    assert len(rules) == 50, len(rules)
    return rules


def create_audiences(account: Any) -> dict[str, Any]:
    from audiences.membership import check_rule
    from audiences.models import Audience

    made = {}
    for slug, rule in fifty():
        check_rule(account, rule)
        made[slug] = Audience.objects.create(account=account, slug=slug, name=slug, rule=rule,
                                             status=Audience.Status.READY)
    return made


# ---- timing ----------------------------------------------------------------------------------

@dataclass
class Timed:
    seconds: list[float]
    loads: list[float]
    result: Any = None

    @property
    def best(self) -> float:
        return min(self.seconds)

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    def show(self) -> str:
        return (f"best {self.best:.3f} s, median {self.median:.3f} s "
                f"(load {min(self.loads):.1f} to {max(self.loads):.1f})")


def timed(fn: Callable[[], Any], rounds: int, before: Callable[[], None] | None = None
          ) -> Timed:
    out = Timed([], [])
    for _ in range(rounds):
        if before is not None:
            before()
        out.loads.append(os.getloadavg()[0])
        began = time.perf_counter()
        out.result = fn()
        out.seconds.append(time.perf_counter() - began)
    return out


def query(sql: str, params: Any) -> list[tuple[Any, ...]]:
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchall()


def ratio(a: Timed, b: Timed) -> str:
    return f"{a.best / b.best:.2f} x"


def clear_memberships(account_id: int) -> None:
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute("DELETE FROM audiences_audiencemembership WHERE account_id = %s",
                    [account_id])
        cur.execute("DELETE FROM audiences_membershipchange WHERE account_id = %s",
                    [account_id])
        cur.execute("DELETE FROM audiences_audiencesize WHERE account_id = %s", [account_id])
        cur.execute("VACUUM ANALYZE audiences_audiencemembership")


# ---- 1-3: batch -------------------------------------------------------------------------------

SCOPE = "p.account_id = %(account)s AND p.merged_into_id IS NULL"


def compiled_pass_count(account: Any, audiences: list[Any], now: datetime
                        ) -> tuple[str, list[Any]]:
    """The compiled one-pass selection of compute_pass (``membership.select_members``),
    counted per audience."""
    from audiences.context import compile_context
    from audiences.membership import rule_schema, select_members

    ctx = compile_context(account.pk, rule_schema(account.pk), now)
    sql, params = select_members(audiences, ctx)
    return f"SELECT s.audience_id, count(*) FROM ({sql}) s GROUP BY 1", params  # noqa: S608


def compiled_count(account: Any, rule: dict[str, Any], now: datetime) -> tuple[str, list[Any]]:
    """What estimate_size runs."""
    from audiences.compiler import compile_sql
    from audiences.context import compile_context
    from audiences.membership import rule_schema

    sql, params = compile_sql(rule, compile_context(account.pk, rule_schema(account.pk), now))
    return ("SELECT count(*) FROM profiles_profile p WHERE p.account_id = %s "  # noqa: S608
            f"AND p.merged_into_id IS NULL AND ({sql})", [account.pk, *params])


def compare(title: str, account: Any, audiences: list[Any], hand: tuple[str, dict[str, Any]],
            compiled: tuple[str, list[Any]], target: float, rounds: int, now: datetime,
            expected: Callable[[Any], list[int]], one_pass: bool = True) -> dict[str, Any]:
    """Hand-written SQL, the compiled SQL, and the product's computation of the audiences
    (``one_pass=False``: each audience in its own statement)."""
    from audiences.membership import compute_audiences

    ids = [a.pk for a in audiences]
    hand_t = timed(lambda: query(*hand), rounds)
    compiled_t = timed(lambda: query(*compiled), rounds)
    hand_counts = expected(hand_t.result)
    compiled_counts = [dict(compiled_t.result).get(pk, 0) for pk in ids] \
        if len(compiled_t.result[0]) == 2 else [compiled_t.result[0][0]]
    assert hand_counts == compiled_counts, (title, hand_counts, compiled_counts)

    def compute() -> Any:
        return compute_audiences(account.pk, ids, now=now, one_pass=one_pass)

    first = timed(compute, rounds, before=lambda: clear_memberships(account.pk))
    sizes = [r.size for r in sorted(first.result, key=lambda r: ids.index(r.audience_id))]
    assert sizes == hand_counts, (title, sizes, hand_counts)
    again = timed(compute, rounds)
    entries = sum(r.entries for r in again.result) + sum(r.exits for r in again.result)
    assert entries == 0, (title, "a recompute changed membership", entries)
    say(f"{title}: sizes {', '.join(f'{n:,}' for n in hand_counts)}\n"
        f"    hand-written SQL count  {hand_t.show()}\n"
        f"    compiled SQL count      {compiled_t.show()}   {ratio(compiled_t, hand_t)} hand\n"
        f"    compute (from empty)    {first.show()}   {ratio(first, hand_t)} hand"
        f"   target <= {target:g} s\n"
        f"    compute (no change)     {again.show()}   {ratio(again, hand_t)} hand")
    return {"hand": hand_t, "compiled": compiled_t, "first": first, "again": again}


def bench_batch(account: Any, made: dict[str, Any], rounds: int, now: datetime,
                skip: set[str]) -> None:
    binds = {"account": account.pk, "since7": now - timedelta(days=7),
             "since30": stamp_of(now - timedelta(days=30))}
    slug, rule, cond = TEN[0]
    if "one" not in skip:
        compare(f'one field audience ({slug}: taxonomy = "cuisine")', account, [made[slug]],
                (f"SELECT count(*) FROM profiles_profile p WHERE {SCOPE} AND {cond}",  # noqa: S608
                 binds),
                compiled_count(account, rule, now), 1.0, rounds, now,
                lambda rows: [rows[0][0]])
    filters = ", ".join(f"count(*) FILTER (WHERE {c})" for _, _, c in TEN)
    ten = [made[s] for s, _, _ in TEN]
    if "ten" not in skip:
        compare("ten field audiences (compiled: one pass)", account, ten,
                (f"SELECT {filters} FROM profiles_profile p WHERE {SCOPE}", binds),  # noqa: S608
                compiled_pass_count(account, ten, now), 3.0, rounds,
                now, lambda rows: list(rows[0]))
        compare("ten field audiences, each in its own statement (one_pass=False)", account, ten,
                (f"SELECT {filters} FROM profiles_profile p WHERE {SCOPE}", binds),  # noqa: S608
                compiled_pass_count(account, ten, now), 3.0, rounds, now,
                lambda rows: list(rows[0]), one_pass=False)
    slug, rule = BEHAVIOURAL
    if "behavioural" not in skip:
        compare("behavioural (added_to_cart in 7 days and no purchase in 7 days)", account,
                [made[slug]], (HAND_BEHAVIOURAL, binds), compiled_count(account, rule, now),
                3.0, rounds, now, lambda rows: [rows[0][0]])


def stamp_of(at: datetime) -> str:
    from profiles.schema.merge import stamp

    return stamp(at)


def compute_all(account: Any, now: datetime) -> None:
    from audiences.membership import compute_account

    clear_memberships(account.pk)
    began = time.perf_counter()
    results = compute_account(account.pk, now=now)
    seconds = time.perf_counter() - began
    members = sum(r.size for r in results)
    say(f"all 50 audiences computed (compute_account, from empty): {seconds:.1f} s, "
        f"{members:,} memberships; {load()}")


# ---- 4: real time ------------------------------------------------------------------------------

def percentiles(values: list[float]) -> str:
    ordered = sorted(values)
    if not ordered:
        return "none"

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    return (f"p50 {at(0.5) * 1000:.3f} ms, p95 {at(0.95) * 1000:.3f} ms, "
            f"mean {statistics.fmean(ordered) * 1000:.3f} ms")


def bench_realtime(account: Any, first_id: int, profiles: int, now: datetime, samples: int
                   ) -> None:
    import random

    from django.db import transaction

    from audiences import realtime
    from audiences.context import compile_context
    from profiles.processing.batch import Batch
    from profiles.schema.compiled import live_schema

    schema = live_schema(account.pk)
    fields = {n: fl.type for n, fl in schema.fields.items()}
    realtime._CACHE.clear()
    began = time.perf_counter()
    state = realtime.account_state(account.pk, fields, schema.version_id, now)
    compile_seconds = time.perf_counter() - began
    ctx = compile_context(account.pk, state.schema, now, {a.slug: a.id for a in state.audiences})
    began = time.perf_counter()
    predicates = state.predicates(ctx)
    per_batch = time.perf_counter() - began
    assert len(predicates) == 50, len(predicates)
    rng = random.Random(5)
    ids = sorted({first_id + 1 + rng.randrange(profiles) for _ in range(samples)})
    nodes = [n for nodes in state.event_nodes.values() for n in nodes]
    began = time.perf_counter()
    with transaction.atomic():
        loaded = realtime._load(account.pk, ids, state, nodes, ctx)
    load_seconds = time.perf_counter() - began
    times, flips = [], 0
    load_before = os.getloadavg()[0]
    for pid in ids:
        t0 = time.perf_counter()
        flips += len(realtime.evaluate_profiles(state, predicates, [pid], {pid: None}, loaded))
        times.append(time.perf_counter() - t0)
    say(f"real time, 50 audiences: compiled in {compile_seconds * 1000:.0f} ms "
        f"(account_state, cached after), time-relative ones again per batch "
        f"{per_batch * 1000:.1f} ms\n"
        f"    predicates of 50 audiences, one profile ({len(ids):,} profiles, {flips} flips): "
        f"{percentiles(times)}   target <= 2 ms; load {load_before:.1f}\n"
        f"    (their data loaded for all {len(ids):,} at once in {load_seconds * 1000:.0f} ms: "
        f"{load_seconds / len(ids) * 1000:.3f} ms per profile)")
    def whole_step() -> list[float]:
        out = []
        for pid in ids[:200]:
            batch = Batch(account_id=account.pk, schema=schema, events=[], now=now)
            batch.changed_profiles = {pid}
            batch.new_profiles = {pid}  # every audience evaluated
            t0 = time.perf_counter()
            with transaction.atomic():
                realtime.evaluate(batch)
            out.append(time.perf_counter() - t0)
        return out

    first = whole_step()  # writes whatever flips (memberships, changes, sizes)
    whole = whole_step()  # the same profiles again: nothing flips
    loads_only = []
    for pid in ids[:200]:
        t0 = time.perf_counter()
        with transaction.atomic():
            realtime._load(account.pk, [pid], state, nodes, ctx)
        loads_only.append(time.perf_counter() - t0)
    say(f"    the whole step (realtime.evaluate, its queries and writes) for one profile, "
        f"every audience, nothing flipping: {percentiles(whole)}; "
        f"the same, the first time, its flips written: {percentiles(first)}\n"
        f"    of which loading its data (realtime._load: values, memberships, event counts): "
        f"{percentiles(loads_only)}; {load()}")


# ---- 5: event → membership change ------------------------------------------------------------

def live_message(rng: Any, run: str, n: int, pool: int, at: datetime) -> dict[str, Any]:
    """A tag event of one of ``pool`` visitors, new to each run (``run``): message ids and
    cookies never seen before (a message id seen in the last 7 days is stored once)."""
    cookie = f"live-{run}-{rng.randrange(pool)}"
    stamp = at.isoformat().replace("+00:00", "Z")
    roll = rng.random()
    base = {"type": "track", "messageId": f"live-{run}-{n}", "anonymousId": cookie,
            "timestamp": stamp}
    if roll < 0.6:
        return {**base, "event": "page_view",
                "properties": {"taxonomy": rng.choice(TAXONOMY), "path": f"/a/{n % 5000}"}}
    if roll < 0.8:
        return {**base, "event": "product_viewed", "properties": {"sku": f"SKU-{n % 2000}"}}
    if roll < 0.93:
        return {**base, "event": "added_to_cart",
                "properties": {"sku": f"SKU-{n % 2000}", "price": n % 200}}
    if roll < 0.96:
        return {**base, "event": "purchase", "properties": {"revenue": n % 400}}
    return {**base, "event": "login", "properties": {"country": rng.choice(COUNTRIES)}}


class ChangeWatch(threading.Thread):
    """Polls the change log every 20 ms on its own connection: when each real-time change
    (by the raw event that caused it) was first visible, committed."""

    def __init__(self, url: str, account_id: int, after: int) -> None:
        super().__init__(daemon=True)
        self.url, self.account_id, self.after = url, account_id, after
        self.seen: dict[int, float] = {}
        self.stop = threading.Event()

    def run(self) -> None:
        import psycopg

        last = self.after  # changes of earlier runs (--reuse) are not this run's
        with psycopg.connect(self.url, autocommit=True) as conn:
            while not self.stop.is_set():
                rows = conn.execute(
                    "SELECT id, raw_event_id FROM audiences_membershipchange WHERE id > %s "
                    "AND account_id = %s AND cause = 'realtime' ORDER BY id",
                    [last, self.account_id]).fetchall()
                now = time.time()
                for cid, raw in rows:
                    last = max(last, cid)
                    if raw is not None:
                        self.seen.setdefault(raw, now)
                time.sleep(0.02)


def bench_latency(account: Any, url: str, rate: float, seconds: float, workers: int) -> None:
    import random

    from django.db import connection

    from profiles.collection.messages import IncomingEvent
    from profiles.collection.store import store_events

    env = {**os.environ, **WORKER_ENV, "DATABASE_URL": url,
           "DJANGO_SETTINGS_MODULE": "cdp_site.settings"}
    procs = [subprocess.Popen([sys.executable, str(ROOT / "manage.py"), "process_events",
                               "--loop", "--timings"], env=env, cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
             for _ in range(workers)]
    steps: dict[str, float] = {}
    rng = random.Random(11)
    run = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
    pool = max(1000, int(rate * seconds) // 6)
    tick = 0.02
    sent = 0
    watch: ChangeWatch | None = None
    try:
        # Warm: the workers are up (Django set up) and have processed a few events (the
        # audiences compiled), so that a loaded machine's slow start is not counted as latency.
        warm = [live_message(rng, f"{run}w", n, pool, datetime.now(UTC)) for n in range(20)]
        store_events(account, "web", [IncomingEvent(
            message=m, message_id=m["messageId"], type="track", event=m["event"],
            anonymous_id=m["anonymousId"], event_at=datetime.now(UTC)) for m in warm],
            source="bench", received_at=datetime.now(UTC))
        warming = time.perf_counter()
        while pending(account.pk) and time.perf_counter() - warming < 300:
            time.sleep(0.1)
        time.sleep(1)
        with connection.cursor() as cur:
            cur.execute("SELECT coalesce(max(id), 0) FROM audiences_membershipchange")
            after = cur.fetchone()[0]
        connection.close()
        watch = ChangeWatch(url, account.pk, after)
        watch.start()
        loads = [os.getloadavg()[0]]
        began = time.perf_counter()
        while True:
            elapsed = time.perf_counter() - began
            if elapsed >= seconds:
                break
            due = min(int(rate * (elapsed + tick)), int(rate * seconds)) - sent
            if due > 0:
                at = datetime.now(UTC)
                batch = []
                for _ in range(due):
                    message = live_message(rng, run, sent + len(batch), pool, at)
                    batch.append(IncomingEvent(
                        message=message, message_id=message["messageId"], type="track",
                        event=message["event"], anonymous_id=message["anonymousId"],
                        event_at=at, encoded=json.dumps(message, separators=(",", ":"))))
                stored = store_events(account, "web", batch, source="bench", received_at=at)
                assert stored == len(batch), (stored, len(batch))
                sent += stored
            if int(elapsed) != int(time.perf_counter() - began):
                loads.append(os.getloadavg()[0])
            pause = began + (sent / rate) - time.perf_counter()
            time.sleep(max(0.0, min(tick, pause)))
        sent_seconds = time.perf_counter() - began
        backlog_at_end = pending(account.pk)
        drain_began = time.perf_counter()
        while pending(account.pk) and time.perf_counter() - drain_began < 120:
            time.sleep(0.2)
        drained = time.perf_counter() - drain_began
        time.sleep(0.5)
    finally:
        if watch is not None:
            watch.stop.set()
            watch.join()
        for p in procs:
            p.terminate()
        for p in procs:
            out, _ = p.communicate(timeout=60)
            for line in out.splitlines():
                if line.startswith("step "):
                    _, name, value = line.split()
                    steps[name] = steps.get(name, 0.0) + float(value)
    with connection.cursor() as cur:
        cur.execute("""
            SELECT c.raw_event_id, extract(epoch FROM c.at - r.received_at),
                   extract(epoch FROM r.received_at), c.kind
            FROM audiences_membershipchange c JOIN profiles_rawevent r ON r.id = c.raw_event_id
            WHERE c.account_id = %s AND c.cause = 'realtime' AND c.id > %s""",
                    [account.pk, after])
        rows = cur.fetchall()
    by_at = [float(lat) for _, lat, _, _ in rows]
    received = {raw: float(rec) for raw, _, rec, _ in rows}
    by_seen = [watch.seen[raw] - received[raw] for raw in received if raw in watch.seen]
    say(f"event → membership change, {workers} worker{'s' * (workers > 1)} "
        f"(process_events --loop, as serve runs it): {sent:,} events stored at "
        f"{sent / sent_seconds:,.1f} events/s over {sent_seconds:.0f} s "
        f"({pool:,} visitors), backlog at the end {backlog_at_end:,} (drained in "
        f"{drained:.1f} s); load {min(loads):.1f} to {max(loads):.1f}\n"
        f"    {len(rows):,} changes ({sum(1 for r in rows if r[3] == 'entry'):,} entries) "
        f"from {len(received):,} events\n"
        f"    received → MembershipChange.at (the batch's clock): {percentiles(by_at)}"
        f"   target p95 <= 1 s\n"
        f"    received → change seen committed (polled every 20 ms): {percentiles(by_seen)}\n"
        f"    worker wall µs per event by step: " + ", ".join(
            f"{name.rsplit('.', 1)[-1]} {1e6 * t / max(sent, 1):.0f}"
            for name, t in sorted(steps.items(), key=lambda kv: -kv[1]) if t >= 0.0005))


def pending(account_id: int) -> int:
    return query("SELECT count(*) FROM profiles_pendingevent WHERE account_id = %s",
                 [account_id])[0][0]


# ---- main --------------------------------------------------------------------------------------

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profiles", type=int, default=1_000_000)
    parser.add_argument("--events", type=int, default=5_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rate", type=float, default=1000,
                        help="events/s for the latency run (below 1 for an idle system)")
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--samples", type=int, default=2000,
                        help="profiles for the real-time figures")
    parser.add_argument("--database", default=os.environ.get("DATABASE_URL", DEFAULT_DATABASE))
    parser.add_argument("--reuse", action="store_true",
                        help="use the data a previous run left (no generation)")
    parser.add_argument("--jit", choices=["default", "off"], default="default",
                        help="PostgreSQL JIT for every connection to the bench database")
    parser.add_argument("--skip", default="",
                        help="comma list of: batch (or one, ten, behavioural), all, realtime, "
                             "latency")
    args = parser.parse_args()
    skip = set(filter(None, args.skip.split(",")))

    url = args.database
    if not args.reuse:
        fresh_database(url)
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cdp_site.settings")
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    from audiences.models import Audience
    from cdp_site.models import Account

    say(f"bench/audiences.py: {args.profiles:,} profiles, {args.events:,} events, "
        f"{args.rounds} rounds; {load()}")
    call_command("migrate", verbosity=0)
    with connection.cursor() as cur:  # for the connections opened from now on
        name = database_name(url)
        cur.execute(f'ALTER DATABASE "{name}" SET jit = off' if args.jit == "off"
                    else f'ALTER DATABASE "{name}" RESET jit')
    connection.close()
    say(f"jit {args.jit}")
    now = datetime.now(UTC).replace(microsecond=0)
    if args.reuse:
        account = Account.objects.get(slug=ACCOUNT_SLUG)
        first = query("SELECT min(id) - 1, count(*) FROM profiles_profile WHERE account_id = %s",
                      [account.pk])[0]
        first_id, args.profiles = first
        made = {a.slug: a for a in Audience.objects.filter(account=account)}
    else:
        account = setup_account(now)
        first_id = generate(account, args.profiles, args.events, now)
        made = create_audiences(account)
    try:
        if "batch" not in skip:
            bench_batch(account, made, args.rounds, now, skip)
        if "all" not in skip:
            compute_all(account, now)
        if "realtime" not in skip:
            bench_realtime(account, first_id, args.profiles, now, args.samples)
        if "latency" not in skip:
            connection.close()
            bench_latency(account, url, args.rate, args.seconds, args.workers)
    finally:
        connection.close()


if __name__ == "__main__":
    main()
