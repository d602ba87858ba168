"""Benchmark of collection: batched and single-event requests, each beside its floor.

Sets up its own database (dropped and created afresh: ``strata_bench_collect`` on the local
PostgreSQL unless ``--database`` names another), migrates it, creates an account and a write
key, then starts gunicorn in production settings (DEBUG=0, plain HTTP on 127.0.0.1) twice: the
product (``cdp_site.wsgi``) and the floor (``bench.floor_app``, a bare Django JSON view with the
same settings and the same gunicorn configuration). After a warm-up it measures, in rounds, in
the same run:

1. batched collection: ``POST /v1/batch`` with 100 Segment messages per request (analytics.js
   track/page/identify, fixed seed, a unique messageId each), events/s answered 200 (each
   stored durably before the answer), beside the floor: one raw COPY (psycopg) of the same
   rows, with the raw store's columns, into a plain table;
2. single-event requests: ``POST /v1/track``, one message per request at 32 connections, req/s
   and p50/p99 latency, beside the floor: the bare Django view through the same generator.

Each figure is the best of the rounds (a shared machine shows its quiet moments), printed with
its floor and the load average; every run also reports the CPU it cost per request, in the
server's processes and in the database's backends (COPY: per row, client and backend), which
the machine's other jobs disturb far less than throughput. Afterwards the raw store must hold
exactly the messages the server answered 200 for: none lost, none duplicated, none failed.

The load generator is this script: processes on 127.0.0.1 driving keep-alive HTTP/1.1
connections from a selector loop (a new connection per request when the server closes them,
as gunicorn's sync workers do). It reports its own CPU use; the floor's figure is the proof
that it is not the bottleneck.

Usage:

    .venv/bin/python bench/collect.py [--server gthread:2x8] [--rounds 3] [--seconds 10]
        [--batch-seconds 10] [--connections 32] [--batch-connections 8] [--keep]
        [--idle-listener]

``--idle-listener`` keeps an idle worker listening throughout (holding the idle lock of
``profiles.processing.wakeup``), so that every statement queueing events sends a NOTIFY: what
waking idle workers costs collection at worst. Without it no worker is idle and none is sent.

``--server`` takes ``sync:N`` or ``gthread:NxT`` (workers x threads), several separated by
commas to compare configurations in one run. The default, two gthread workers of eight threads,
did best of those tried (docs/benchmarks.md); ``manage.py serve`` runs two of four. gunicorn's
access log is off here, as in bench/bulk.py.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import math
import multiprocessing
import os
import random
import selectors
import socket
import subprocess
import sys
import threading
import time
import uuid
from array import array
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import drop_database, fresh_database  # noqa: E402
from cdp_site.dburl import database_name  # noqa: E402

DEFAULT_DATABASE = "postgres://postgres@127.0.0.1:5432/strata_bench_collect"
PEPPER = "bench-collect-pepper"
MARK = "@@MID@@"  # where a template's messageId goes
EVENT_NAMES = ["Product Viewed", "Product Added", "Order Completed", "Signed Up", "Searched"]
PATHS = [f"/p/{n}" for n in range(400)]
AGENTS = [
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:121.0) Gecko/20100101 Firefox/121.0",
]
BATCH_SIZE = 100
GRACE_SECONDS = 30.0  # answers still awaited this long after a run's time is up


def say(line: str) -> None:
    print(line, flush=True)


def load_average() -> str:
    return "load {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


# ---- messages ----------------------------------------------------------------------------

def make_message(rng: random.Random, at: datetime) -> dict[str, Any]:
    """An analytics.js message (75 % track, 15 % page, 10 % identify), about 900 bytes."""
    stamp = at.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    path = rng.choice(PATHS)
    message: dict[str, Any] = {
        "messageId": MARK,
        "anonymousId": str(uuid.UUID(int=rng.getrandbits(128))),
        "userId": f"user-{rng.randint(1, 50_000)}",
        "timestamp": stamp,
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
        message.update(type="identify", traits={
            "email": f"person{rng.randint(1, 50_000)}@example.com", "plan": "pro",
            "logins": rng.randint(1, 300), "created_at": "2024-03-01T10:00:00Z",
        })
    elif roll < 0.25:
        message.update(type="page", name="Product", properties={"path": path, "title": "Shop"})
    else:
        message.update(type="track", event=rng.choice(EVENT_NAMES), properties={
            "product_id": f"sku-{rng.randint(1, 5_000)}", "price": round(rng.uniform(1, 300), 2),
            "quantity": rng.randint(1, 5), "currency": "USD", "in_stock": rng.random() < 0.9,
            "tags": ["autumn", "sale"][: rng.randint(0, 2)],
        })
    return message


def _pieces(body: dict[str, Any]) -> tuple[bytes, ...]:
    """A body as JSON bytes split where the message ids go."""
    text = json.dumps(body, separators=(",", ":"))
    return tuple(part.encode() for part in text.split(MARK))


def batch_templates(seed: int, count: int, now: datetime) -> list[tuple[bytes, ...]]:
    """Bodies of /v1/batch: 100 messages each, sent a few seconds after they happened."""
    rng = random.Random(seed)
    templates = []
    for _ in range(count):
        sent = now - timedelta(seconds=rng.randint(0, 60))
        messages = [make_message(rng, sent - timedelta(milliseconds=rng.randint(0, 30_000)))
                    for _ in range(BATCH_SIZE)]
        templates.append(_pieces({"batch": messages, "sentAt": sent.isoformat()}))
    return templates


def track_templates(seed: int, count: int, now: datetime) -> list[tuple[bytes, ...]]:
    """Bodies of /v1/track: one track message each (as analytics-python sends them)."""
    rng = random.Random(seed + 1)
    templates = []
    while len(templates) < count:
        message = make_message(rng, now - timedelta(seconds=rng.randint(0, 60)))
        if message["type"] != "track":
            continue
        message["context"]["library"] = {"name": "analytics-python", "version": "2.3.3"}
        message["sentAt"] = message["timestamp"]
        templates.append(_pieces(message))
    return templates


def message_ids(prefix: str, process: int, seq: int, count: int) -> list[str]:
    """The messageIds of one request: one per template mark."""
    base = f"{prefix}{process}-{seq}"
    return [base] if count == 1 else [f"{base}-{n}" for n in range(count)]


def fill(pieces: tuple[bytes, ...], ids: list[str]) -> bytes:
    parts = [pieces[0]]
    for mid, piece in zip(ids, pieces[1:], strict=True):
        parts.append(mid.encode())
        parts.append(piece)
    return b"".join(parts)


# ---- the load generator ------------------------------------------------------------------

@dataclass(frozen=True)
class Load:
    """One timed run: which path, with which bodies, how many connections, for how long."""

    port: int
    path: str
    headers: str  # extra header lines, each ending in \r\n
    templates: list[tuple[bytes, ...]]
    prefix: str  # messageIds are <prefix><process>-<seq>[-<n>]
    connections: int
    seconds: float
    max_requests: int
    processes: int


@dataclass
class Result:
    ok: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    errors: int = 0  # connections reset or closed before an answer
    unfinished: int = 0  # no answer within the grace period
    latencies: array[float] = field(default_factory=lambda: array("d"))
    acked: list[tuple[int, int]] = field(default_factory=list)  # (process, seq) answered 200
    seconds: float = 0.0
    cpu: float = 0.0  # the generator's CPU seconds, all processes
    events: int = 0  # messages answered 200
    app_cpu: float = 0.0  # CPU seconds of the server (gunicorn) processes during the run
    db_cpu: float = 0.0  # CPU seconds of the database's PostgreSQL backends during the run

    def rate(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0

    def percentile(self, fraction: float) -> float:
        ordered = sorted(self.latencies)
        if not ordered:
            return math.nan
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


class _Conn:
    __slots__ = ("body_end", "close", "inbuf", "out", "sent_at", "seq", "sock", "status")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.out = memoryview(b"")
        self.inbuf = bytearray()
        self.sent_at = 0.0
        self.seq = -1
        self.status = 0
        self.body_end = -1
        self.close = False


def _connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setblocking(False)
    return sock


def _drive(load: Load, process: int, start: float, queue: Any) -> None:
    """One generator process: its share of the connections, each sending its next request as
    soon as the previous one is answered, until the time or the request budget is used up."""
    connections = load.connections // load.processes + (process < load.connections
                                                        % load.processes)
    budget = math.ceil(load.max_requests / load.processes)
    marks = len(load.templates[0]) - 1
    head = (f"POST {load.path} HTTP/1.1\r\nHost: 127.0.0.1:{load.port}\r\n"
            f"Content-Type: application/json\r\n{load.headers}")
    ok = errors = unfinished = 0
    statuses: Counter[int] = Counter()
    latencies = array("d")
    acked = array("q")
    seq = 0
    selector = selectors.DefaultSelector()
    while time.perf_counter() < start:
        time.sleep(0.001)
    cpu_began = time.process_time()
    deadline = start + load.seconds
    last = start

    def send(conn: _Conn) -> bool:
        nonlocal seq
        if seq >= budget or time.perf_counter() >= deadline:
            return False
        body = fill(load.templates[seq % len(load.templates)],
                    message_ids(load.prefix, process, seq, marks))
        request = f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body
        conn.seq, seq = seq, seq + 1
        conn.out = memoryview(request)
        conn.inbuf.clear()
        conn.status, conn.body_end, conn.close = 0, -1, False
        conn.sent_at = time.perf_counter()
        selector.modify(conn.sock, selectors.EVENT_WRITE, conn)
        return True

    def finish(conn: _Conn) -> None:
        selector.unregister(conn.sock)
        conn.sock.close()

    def reopen(conn: _Conn) -> None:
        selector.unregister(conn.sock)
        conn.sock.close()
        conn.sock = _connect(load.port)
        selector.register(conn.sock, selectors.EVENT_WRITE, conn)

    for _ in range(connections):
        conn = _Conn(_connect(load.port))
        selector.register(conn.sock, selectors.EVENT_WRITE, conn)
        if not send(conn):
            finish(conn)
    while selector.get_map():
        events = selector.select(timeout=1.0)
        if not events and time.perf_counter() > deadline + GRACE_SECONDS:
            unfinished = len(selector.get_map())
            break
        for key, mask in events:
            conn = key.data
            if mask & selectors.EVENT_WRITE:
                try:
                    sent = conn.sock.send(conn.out)
                except OSError:
                    sent = -1
                if sent < 0:
                    errors += 1
                    reopen(conn)
                    if not send(conn):
                        finish(conn)
                    continue
                conn.out = conn.out[sent:]
                if not conn.out:
                    selector.modify(conn.sock, selectors.EVENT_READ, conn)
                continue
            try:
                data = conn.sock.recv(262144)
            except OSError:
                data = b""
            if not data:  # closed without (all of) an answer
                errors += 1
                reopen(conn)
                if not send(conn):
                    finish(conn)
                continue
            conn.inbuf += data
            if conn.body_end < 0:
                end = conn.inbuf.find(b"\r\n\r\n")
                if end < 0:
                    continue
                header = bytes(conn.inbuf[:end]).lower()
                conn.status = int(header[9:12])
                length = 0
                for line in header.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name == b"content-length":
                        length = int(value)
                    elif name == b"connection" and value.strip() == b"close":
                        conn.close = True
                conn.body_end = end + 4 + length
            if len(conn.inbuf) < conn.body_end:
                continue
            now = time.perf_counter()
            last = now
            latencies.append(now - conn.sent_at)
            statuses[conn.status] += 1
            if conn.status == 200:
                ok += 1
                acked.append(conn.seq)
            if conn.close:
                reopen(conn)
            if not send(conn):
                finish(conn)
    queue.put({"process": process, "ok": ok, "errors": errors, "unfinished": unfinished,
               "statuses": dict(statuses), "latencies": latencies.tobytes(),
               "acked": acked.tobytes(), "last": last, "cpu": time.process_time() - cpu_began})


def _cpu_seconds(pids: list[int]) -> dict[int, float]:
    import psutil

    seconds = {}
    for pid in pids:
        try:
            times = psutil.Process(pid).cpu_times()
        except psutil.Error:
            continue
        seconds[pid] = times.user + times.system
    return seconds


@dataclass(frozen=True)
class Watched:
    """Processes whose CPU time a run reports: the server's, and the database's backends."""

    server: int  # gunicorn's master pid
    database: str  # the database name, as its backends show it

    def pids(self) -> tuple[list[int], list[int]]:
        import psutil

        try:
            master = psutil.Process(self.server)
            app = [self.server, *(child.pid for child in master.children(recursive=True))]
        except psutil.Error:
            app = []
        db = []
        for process in psutil.process_iter(["cmdline"]):
            words = (process.info["cmdline"] or [""])[0].split()
            # The backends serving the database's clients (not autovacuum, which comes and
            # goes on its own schedule).
            if (words[:1] == ["postgres:"] and self.database in words
                    and "autovacuum" not in words):
                db.append(process.pid)
        return app, db


def _used(before: dict[int, float], after: dict[int, float]) -> float:
    return sum(after[pid] - before.get(pid, 0.0) for pid in after)


def run_load(load: Load, watched: Watched | None = None) -> Result:
    context = multiprocessing.get_context("fork")
    app_pids, db_pids = watched.pids() if watched else ([], [])
    app_before, db_before = _cpu_seconds(app_pids), _cpu_seconds(db_pids)
    queue = context.Queue()
    start = time.perf_counter() + 0.3
    workers = [context.Process(target=_drive, args=(load, n, start, queue), daemon=True)
               for n in range(load.processes)]
    for worker in workers:
        worker.start()
    reports = [queue.get(timeout=load.seconds + GRACE_SECONDS + 60) for _ in workers]
    if watched:  # backends that started during the run count from zero
        app_pids, db_pids = watched.pids()
    app_after, db_after = _cpu_seconds(app_pids), _cpu_seconds(db_pids)
    for worker in workers:
        worker.join(timeout=10)
    result = Result(app_cpu=_used(app_before, app_after), db_cpu=_used(db_before, db_after))
    marks = len(load.templates[0]) - 1
    for report in reports:
        result.ok += report["ok"]
        result.errors += report["errors"]
        result.unfinished += report["unfinished"]
        result.statuses.update(report["statuses"])
        latencies = array("d")
        latencies.frombytes(report["latencies"])
        result.latencies.extend(latencies)
        acked = array("q")
        acked.frombytes(report["acked"])
        result.acked.extend((report["process"], seq) for seq in acked)
        result.seconds = max(result.seconds, report["last"] - start)
        result.cpu += report["cpu"]
    result.events = result.ok * marks
    return result


# ---- servers -----------------------------------------------------------------------------

@dataclass(frozen=True)
class ServerConfig:
    worker_class: str  # sync or gthread
    workers: int
    threads: int = 1

    @classmethod
    def parse(cls, text: str) -> ServerConfig:
        kind, _, size = text.strip().partition(":")
        if kind == "sync":
            return cls("sync", int(size or 3))
        if kind == "gthread":
            workers, _, threads = (size or "2x8").partition("x")
            return cls("gthread", int(workers), int(threads or 8))
        raise SystemExit(f"--server: {text!r} is not sync:N or gthread:NxT")

    @property
    def label(self) -> str:
        if self.worker_class == "sync":
            return f"gunicorn sync, {self.workers} workers"
        return f"gunicorn gthread, {self.workers} workers x {self.threads} threads"

    def args(self) -> list[str]:
        args = ["--workers", str(self.workers), "--worker-class", self.worker_class]
        if self.worker_class == "gthread":
            args += ["--threads", str(self.threads)]
        return args


def start_server(app: str, port: int, config: ServerConfig, url: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "DATABASE_URL": url, "DEBUG": "0", "SECRET_KEY": "bench-" + "k" * 50,
           "ALLOWED_HOSTS": "127.0.0.1", "STRATA_TOKEN_PEPPER": PEPPER,
           "SECURE_SSL_REDIRECT": "false", "LOG_LEVEL": "WARNING"}
    return subprocess.Popen(
        [sys.executable, "-m", "gunicorn", app, "--bind", f"127.0.0.1:{port}",
         *config.args(), "--timeout", "120", "--graceful-timeout", "5"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )


def wait_for_server(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"gunicorn on port {port} exited with {process.returncode}")
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            connection.request("GET", "/health/")
            connection.getresponse().read()
            return
        except OSError:
            time.sleep(0.3)
        finally:
            connection.close()
    raise SystemExit(f"gunicorn on port {port} did not answer within 60 s")


def stop_server(process: subprocess.Popen[bytes] | None) -> None:
    if process is not None and process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


# ---- the database ------------------------------------------------------------------------

COPY_COLUMNS = ("account_id, stream, message_id, type, event, user_id, anonymous_id, "
                "received_at, sent_at, event_at, source, write_key_id, message, warnings")


def copy_rows(templates: list[tuple[bytes, ...]], count: int, account_id: int, key_id: int
              ) -> list[tuple[Any, ...]]:
    """The rows the batched run stores, with the raw store's columns (the message as JSON)."""
    rows: list[tuple[Any, ...]] = []
    now = datetime.now(UTC)
    seq = 0
    while len(rows) < count:
        body = json.loads(fill(templates[seq % len(templates)],
                               message_ids("copy", 0, seq, BATCH_SIZE)))
        for message in body["batch"]:
            rows.append((account_id, "default", message["messageId"], message["type"],
                         message.get("event", ""), message["userId"], message["anonymousId"],
                         now, now, now, "segment", key_id,
                         json.dumps(message, separators=(",", ":")), None))
        seq += 1
    return rows[:count]


def copy_floor(url: str, rows: list[tuple[Any, ...]], database: str
               ) -> tuple[float, tuple[float, float]]:
    """Rows/s of one COPY of the rows into a plain table (no indexes, no partitions),
    committed; and the CPU seconds per row of this process and of its PostgreSQL backend."""
    import psycopg

    with psycopg.connect(url) as conn:
        backend = conn.info.backend_pid
        conn.execute("DROP TABLE IF EXISTS bench_copy_floor")
        conn.execute("CREATE TABLE bench_copy_floor (account_id bigint, stream text, "
                     "message_id text, type text, event text, user_id text, anonymous_id text, "
                     "received_at timestamptz, sent_at timestamptz, event_at timestamptz, "
                     "source text, write_key_id bigint, message jsonb, warnings jsonb)")
        conn.commit()
        db_before = _cpu_seconds([backend])
        cpu_before = time.process_time()
        began = time.perf_counter()
        with conn.cursor() as cursor, cursor.copy(
                f"COPY bench_copy_floor ({COPY_COLUMNS}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        conn.commit()
        seconds = time.perf_counter() - began
        client = (time.process_time() - cpu_before) / len(rows)
        db = _used(db_before, _cpu_seconds([backend])) / len(rows)
        conn.execute("DROP TABLE bench_copy_floor")
        conn.commit()
    return len(rows) / seconds, (client, db)


def verify(url: str, account_id: int, runs: list[tuple[Load, Result]]) -> tuple[int, int]:
    """The raw store holds exactly the messages answered 200: returns (stored, failed)."""
    import psycopg

    expected: set[str] = set()
    for load, result in runs:
        marks = len(load.templates[0]) - 1
        for process, seq in result.acked:
            expected.update(message_ids(load.prefix, process, seq, marks))
    with psycopg.connect(url) as conn:
        stored = [row[0] for row in conn.execute(
            "SELECT message_id FROM profiles_rawevent WHERE account_id = %s", [account_id])]
        failed = conn.execute("SELECT count(*) FROM profiles_failedevent").fetchone()
    unique = set(stored)
    lost = expected - unique
    extra = unique - expected
    duplicated = len(stored) - len(unique)
    if lost or extra or duplicated or (failed and failed[0]):
        raise SystemExit(
            f"verification failed: {len(expected):,} events answered 200, {len(stored):,} rows "
            f"stored; {len(lost):,} lost, {len(extra):,} stored without a 200, {duplicated:,} "
            f"duplicated, {failed[0] if failed else 0} failed events")
    return len(stored), 0


# ---- the run -----------------------------------------------------------------------------

def describe(result: Result) -> str:
    others = {code: n for code, n in result.statuses.items() if code != 200}
    extra = f", other answers {others}" if others else ""
    if result.errors or result.unfinished:
        extra += f", {result.errors} connection errors, {result.unfinished} unanswered"
    return (f"{result.rate():,.0f} req/s, p50 {result.percentile(0.5) * 1000:.1f} ms, "
            f"p99 {result.percentile(0.99) * 1000:.1f} ms{extra}")


def cpu_use(result: Result) -> str:
    """CPU per request answered: the server's, and PostgreSQL's."""
    answered = sum(result.statuses.values()) or 1
    return (f"CPU per request: app {result.app_cpu / answered * 1e6:,.0f} us, "
            f"PostgreSQL {result.db_cpu / answered * 1e6:,.0f} us")


def generator_use(result: Result, processes: int) -> str:
    share = result.cpu / result.seconds / processes if result.seconds else 0.0
    return f"generator {share:.0%} of a core per process"


@dataclass
class Bench:
    """What every configuration is measured with."""

    args: argparse.Namespace
    url: str
    headers: str
    batches: list[tuple[bytes, ...]]
    tracks: list[tuple[bytes, ...]]
    rows: list[tuple[Any, ...]]
    runs: list[tuple[Load, Result]] = field(default_factory=list)  # against the product

    def load(self, path: str, bodies: list[tuple[bytes, ...]], prefix: str, connections: int,
             seconds: float, port: int) -> Load:
        return Load(port=port, path=path, headers=self.headers, templates=bodies,
                    prefix=prefix, connections=connections, seconds=seconds,
                    max_requests=self.args.max_requests, processes=self.args.processes)

    def run(self, load: Load, *, product: bool, server: int) -> Result:
        result = run_load(load, Watched(server, self.database))
        if product:
            self.runs.append((load, result))
        return result

    @property
    def database(self) -> str:
        return database_name(self.url)

    def measure(self, config: ServerConfig, port: int, pids: tuple[int, int]) -> None:
        """Warm up, then rounds of: COPY, batched, bare view, single events; print the best."""
        args = self.args
        tag = f"{config.worker_class[0]}{config.workers}x{config.threads}"
        floor = port + 1
        product_pid, floor_pid = pids
        self.run(self.load("/v1/batch", self.batches, f"w{tag}b", args.batch_connections,
                           args.warmup, port), product=True, server=product_pid)
        self.run(self.load("/v1/track", self.tracks, f"w{tag}s", args.connections,
                           args.warmup, port), product=True, server=product_pid)
        self.run(self.load("/v1/track", self.tracks, f"w{tag}f", args.connections,
                           args.warmup, floor), product=False, server=floor_pid)
        copies: list[float] = []
        batches: list[Result] = []
        singles: list[Result] = []
        bares: list[Result] = []
        for n in range(1, args.rounds + 1):
            copy, copy_cpu = copy_floor(self.url, self.rows, self.database)
            copies.append(copy)
            say(f"   round {n}: COPY {copy:,.0f} rows/s (CPU per row: client "
                f"{copy_cpu[0] * 1e6:.0f} us, PostgreSQL {copy_cpu[1] * 1e6:.0f} us); "
                f"{load_average()}")
            batch = self.run(self.load("/v1/batch", self.batches, f"r{tag}-{n}b",
                                       args.batch_connections, args.batch_seconds, port),
                             product=True, server=product_pid)
            batches.append(batch)
            say(f"   round {n}: batched {batch.events / batch.seconds:,.0f} events/s "
                f"({describe(batch)}; {cpu_use(batch)}; "
                f"{generator_use(batch, args.processes)}); {load_average()}")
            bares.append(self.run(self.load("/v1/track", self.tracks, f"r{tag}-{n}f",
                                            args.connections, args.seconds, floor),
                                  product=False, server=floor_pid))
            say(f"   round {n}: bare view {describe(bares[-1])} ({cpu_use(bares[-1])}; "
                f"{generator_use(bares[-1], args.processes)}); {load_average()}")
            singles.append(self.run(self.load("/v1/track", self.tracks, f"r{tag}-{n}s",
                                              args.connections, args.seconds, port),
                                    product=True, server=product_pid))
            say(f"   round {n}: /v1/track {describe(singles[-1])} ({cpu_use(singles[-1])}; "
                f"{generator_use(singles[-1], args.processes)}); {load_average()}")
        copy = max(copies)
        batch = max(batches, key=lambda r: r.events / r.seconds)
        single = max(singles, key=Result.rate)
        bare = max(bares, key=Result.rate)
        events = batch.events / batch.seconds
        say(f"batched  POST /v1/batch, {BATCH_SIZE} events/request, {args.batch_connections} "
            f"connections: {events:,.0f} events/s (p99 {batch.percentile(0.99) * 1000:.0f} ms)"
            f" | floor: raw COPY of the same rows {copy:,.0f} rows/s | {events / copy:.0%} of "
            f"the floor (target >= 20,000 events/s and >= 35 %) | {load_average()}")
        say(f"single   POST /v1/track, {args.connections} connections: {describe(single)} | "
            f"floor: bare Django JSON view {describe(bare)} | "
            f"{single.rate() / bare.rate():.0%} of the floor "
            f"(target >= 1,500 req/s, p99 <= 50 ms, >= 50 %) | {load_average()}")


class IdleListener(threading.Thread):
    """``--idle-listener``: plays an idle ``process_events --loop`` worker that never wakes
    (holds the idle lock and listens, profiles.processing.wakeup), so that every statement
    queueing events sends a NOTIFY: the worst case of what waking workers costs collection."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.notifications = 0
        self.ready = threading.Event()
        self.stop = threading.Event()

    def run(self) -> None:
        import psycopg

        from profiles.processing.wakeup import CHANNEL, IDLE_LOCK

        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f"LISTEN {CHANNEL}")
            conn.execute("SELECT pg_advisory_lock(%s, %s)", IDLE_LOCK)
            self.ready.set()
            while not self.stop.is_set():
                for _ in conn.notifies(timeout=0.2):
                    self.notifications += 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", default=os.environ.get("BENCH_DATABASE_URL",
                                                             DEFAULT_DATABASE),
                        help="a database to drop and create afresh")
    parser.add_argument("--server", default="gthread:2x8",
                        help="sync:N or gthread:NxT, several separated by commas")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10.0, help="each single-event run")
    parser.add_argument("--batch-seconds", type=float, default=10.0, help="each batched run")
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--batch-connections", type=int, default=8)
    parser.add_argument("--processes", type=int, default=2, help="load generator processes")
    parser.add_argument("--max-requests", type=int, default=200_000,
                        help="per run, at most this many requests")
    parser.add_argument("--copy-rows", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=20_000)
    parser.add_argument("--port", type=int, default=8781)
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument("--idle-listener", action="store_true",
                        help="an idle worker listens throughout: every statement notifies")
    parser.add_argument("--suppressions", type=int, default=0,
                        help="identifiers on the account's suppression list (none of them in "
                             "the bench's events: every event is checked, and stored)")
    args = parser.parse_args()
    configs = [ServerConfig.parse(text) for text in args.server.split(",")]

    url = args.database
    fresh_database(url)
    os.environ["DATABASE_URL"] = url
    os.environ["STRATA_TOKEN_PEPPER"] = PEPPER
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cdp_site.settings")
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    from profiles.collection.partitions import ensure_partitions
    from tests.conftest import make_account, make_write_key

    call_command("migrate", verbosity=0)
    account = make_account("Bench Collect", "bench-collect")
    ensure_partitions(account_ids=[account.pk])
    key, secret = make_write_key(account, "Bench")
    if args.suppressions:
        from profiles.privacy.suppress import suppress_values

        suppress_values(account, (f"gone-{n}@example.com" for n in range(args.suppressions)),
                        subject="bench")
    connection.close()  # the generator processes fork from this one
    auth = base64.b64encode(f"{secret}:".encode()).decode()

    now = datetime.now(UTC)
    batches = batch_templates(args.seed, 64, now)
    bench = Bench(args=args, url=url, headers=f"Authorization: Basic {auth}\r\n",
                  batches=batches, tracks=track_templates(args.seed, 512, now),
                  rows=copy_rows(batches, args.copy_rows, account.pk, key.pk))
    size = sum(len(p) for p in batches[0]) / BATCH_SIZE
    say(f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores, {load_average()}; "
        f"messages of about {size:.0f} bytes (seed {args.seed})")

    listener = IdleListener(url) if args.idle_listener else None
    if listener is not None:
        listener.start()
        listener.ready.wait(60)
        say("an idle worker listens (holding the idle lock): every statement notifies")
    servers: list[subprocess.Popen[bytes]] = []
    try:
        for index, config in enumerate(configs):
            port = args.port + 2 * index
            say(f"-- {config.label}")
            servers = [start_server("cdp_site.wsgi:application", port, config, url),
                       start_server("bench.floor_app:application", port + 1, config, url)]
            wait_for_server(port, servers[0])
            wait_for_server(port + 1, servers[1])
            bench.measure(config, port, (servers[0].pid, servers[1].pid))
            for server in servers:
                stop_server(server)
        stored, _ = verify(url, account.pk, bench.runs)
        say(f"verified: {stored:,} rows stored = {stored:,} events answered 200 "
            f"(none lost, none duplicated, no failed events); {load_average()}")
    finally:
        for server in servers:
            stop_server(server)
        if listener is not None:
            listener.stop.set()
            listener.join(5)
            say(f"notifications received by the idle listener: {listener.notifications:,}")
        if not args.keep:
            drop_database(url)


if __name__ == "__main__":
    main()
