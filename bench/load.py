"""Load: a mixed load driven by locust (headless) against ``manage.py serve`` in production
settings (DEBUG=0, gunicorn), its error rate, p99 per path, and the memory of every process.

Sets up its own database (dropped and created afresh: ``strata_bench_load`` on DATABASE_URL's
server, or the embedded one), the soak's account, schema and experience (bench/soak.py) and
``--people`` people, whose profiles exist before the load starts. Then ``manage.py serve``
(gunicorn with two gthread workers of four threads, the event processor, the django-q2 cluster,
the aggregator) takes the mix, per simulated user:

- ``POST /v1/batch`` with 20 Segment messages (weight 1), ``POST /v1/track`` (weight 4);
- ``POST /api/v1/decide`` for a known visitor (weight 6);
- ``GET /api/v1/profiles/user_id/<id>`` with an Admin token (weight 2).

Modes:

- ``--find-peak``: steps of ``--step-seconds`` at 4, 8, 16, 32... users with no wait, until the
  requests answered per second stop growing by 5 % or errors appear; the peak is the best step's
  rate (answered without error);
- the default: ``--minutes`` (10) at ``--rate`` requests/s (``--rate`` defaults to half of a
  peak found first, in the same run), paced by locust's ``constant_throughput`` over
  ``--users`` users. Memory (RSS) of every process of serve's tree is read at the end of the
  warm-up (``--warmup-seconds``) and at the end.

It prints one line per path (requests, error rate, p50 and p99 in ms), the total rate and error
rate, the processing queue left at the end, and a line per process: RSS at warm-up, at the end
and its growth. The load generator runs on the same two cores, which the figures include.

Usage:

    .venv/bin/python bench/load.py --find-peak [--step-seconds 30]
    .venv/bin/python bench/load.py [--rate R] [--minutes 10] [--users 32]
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

try:  # imported by locust as its locustfile: only the user class and the tasks
    from locust import FastHttpUser, constant, constant_throughput, task
except ImportError:  # pragma: no cover - locust is in the dev extra
    FastHttpUser = object  # type: ignore[misc,assignment]

PEOPLE = int(os.environ.get("LOAD_PEOPLE", "2000"))
PER_USER_RATE = float(os.environ.get("LOAD_PER_USER_RATE", "0"))  # 0: no wait


if FastHttpUser is not object:

    class Mixed(FastHttpUser):
        """One simulated client of the mix; the keys come from the environment."""

        wait_time = constant_throughput(PER_USER_RATE) if PER_USER_RATE else constant(0)

        def on_start(self) -> None:
            self.rng = random.Random()
            self.write = {"Authorization": f"Basic {os.environ['LOAD_WRITE_AUTH']}"}
            self.read = {"Authorization": f"Bearer {os.environ['LOAD_TOKEN']}"}
            self.seq = 0

        def _message(self) -> dict[str, Any]:
            self.seq += 1
            person = self.rng.randrange(PEOPLE)
            return {"type": "track", "event": "Load", "messageId": f"{id(self)}-{self.seq}",
                    "anonymousId": f"c-{person}-{self.rng.randrange(3)}",
                    "userId": f"u-{person}", "properties": {"unit": 1}}

        @task(1)
        def batch(self) -> None:
            self.client.post("/v1/batch", json={"batch": [self._message() for _ in range(20)]},
                             headers=self.write)

        @task(4)
        def track(self) -> None:
            self.client.post("/v1/track", json=self._message(), headers=self.write)

        @task(6)
        def decide(self) -> None:
            uid = f"c-{self.rng.randrange(PEOPLE)}-{self.rng.randrange(3)}"
            self.client.post("/api/v1/decide", json={"uid": uid}, headers=self.write)

        @task(2)
        def profile(self) -> None:
            self.client.get(f"/api/v1/profiles/user_id/u-{self.rng.randrange(PEOPLE)}",
                            headers=self.read, name="/api/v1/profiles/user_id/<id>")


# ---- the orchestration (not run when locust imports this file) -----------------------------


@dataclass
class Step:
    users: int
    rate: float
    failures: int
    requests: int
    rows: list[dict[str, str]]


def say(line: str) -> None:
    print(line, flush=True)


def run_locust(host: str, env: dict[str, str], users: int, seconds: float, per_user: float,
               prefix: Path) -> Step:
    with open(f"{prefix}.log", "wb") as log:  # locust's own summary, for a closer look
        subprocess.run(
            [sys.executable, "-m", "locust", "-f", str(Path(__file__).resolve()), "--headless",
             "--host", host, "-u", str(users), "-r", str(max(users, 1)), "-t",
             f"{int(seconds)}s", "--csv", str(prefix), "--only-summary", "--loglevel",
             "WARNING", "--stop-timeout", "10"],
            cwd=ROOT, env={**env, "LOAD_PER_USER_RATE": str(per_user)}, check=False,
            stdout=log, stderr=log)
    with open(f"{prefix}_stats.csv") as handle:
        rows = list(csv.DictReader(handle))
    total = next(r for r in rows if r["Name"] == "Aggregated")
    return Step(users, float(total["Requests/s"]), int(total["Failure Count"]),
                int(total["Request Count"]), rows)


def find_peak(host: str, env: dict[str, str], step_seconds: float, out: Path) -> float:
    best: Step | None = None
    users = 4
    while users <= 256:
        step = run_locust(host, env, users, step_seconds, 0, out / f"peak-{users}")
        say(f"  {users:>3} users: {step.rate:,.0f} req/s, {step.failures} failures of "
            f"{step.requests:,}")
        if step.failures:
            break
        if best is not None and step.rate < best.rate * 1.05:
            best = step if step.rate > best.rate else best
            break
        best = step
        users *= 2
    if best is None:
        raise SystemExit("no step ran without errors")
    say(f"peak: {best.rate:,.0f} req/s at {best.users} users (no errors)")
    return best.rate


def memory(serve: Any) -> dict[str, int]:
    """RSS in bytes of every process of serve's tree, by a stable label."""
    import psutil

    out: dict[str, int] = {}
    root = psutil.Process(serve.process.pid)
    for process in [root, *root.children(recursive=True)]:
        try:
            cmd = " ".join(process.cmdline())
            rss = process.memory_info().rss
        except psutil.Error:
            continue
        label = _label(cmd, process.pid == root.pid, process.ppid() == root.pid)
        n = 1
        while f"{label} {n}" in out:
            n += 1
        out[f"{label} {n}"] = rss
    return out


def _label(cmd: str, is_root: bool, child_of_root: bool) -> str:
    if is_root:
        return "serve"
    if "gunicorn" in cmd:
        return "gunicorn master" if child_of_root else "gunicorn worker"
    for name, label in (("process_events", "processor"), ("qcluster", "django-q2"),
                        ("aggregate_streams", "aggregator")):
        if name in cmd:
            return label
    return cmd[:40]


def seed_people(base: str, auth: str, people: int) -> None:
    import requests

    session = requests.Session()
    headers = {"Authorization": f"Basic {auth}"}
    for start in range(0, people, 100):
        batch = [{"type": "identify", "messageId": f"seed-{p}", "userId": f"u-{p}",
                  "anonymousId": f"c-{p}-0", "properties": {"unit": 1}}
                 for p in range(start, min(start + 100, people))]
        response = session.post(base + "/v1/batch", json={"batch": batch}, headers=headers,
                                timeout=30)
        response.raise_for_status()


def wait_for_queue(account_id: int, seconds: float) -> int:
    from django.db import connection

    from profiles.models import PendingEvent

    deadline = time.monotonic() + seconds
    while True:
        connection.close()
        left = PendingEvent.objects.filter(account_id=account_id).count()
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(1)


def main() -> None:
    import base64

    from bench.common import drop_database, fresh_database, server_url
    from bench.soak import Serve, free_port, set_up, wait_until_up
    from cdp_site.dburl import with_database

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--find-peak", action="store_true", help="find the peak and stop")
    parser.add_argument("--step-seconds", type=float, default=30.0)
    parser.add_argument("--rate", type=float, default=None, help="req/s (default: half peak)")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--warmup-seconds", type=float, default=60.0)
    parser.add_argument("--users", type=int, default=32)
    parser.add_argument("--people", type=int, default=PEOPLE)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()

    url = args.database_url or with_database(server_url(), "strata_bench_load")
    fresh_database(url)
    setup = set_up(url)
    port = free_port()
    out = Path(tempfile.mkdtemp(prefix="strata-load-"))
    serve = Serve(url, port, out / "serve.log")
    host = f"http://127.0.0.1:{port}"
    auth = base64.b64encode(f"{setup.write_key}:".encode()).decode()
    env = {**os.environ, "LOAD_WRITE_AUTH": auth, "LOAD_TOKEN": setup.token,
           "LOAD_PEOPLE": str(args.people)}
    say(f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores, load average "
        f"{os.getloadavg()[0]:.2f}; manage.py serve (DEBUG=0) on {host}; files in {out}")
    try:
        serve.start()
        wait_until_up(host, serve)
        seed_people(host, auth, args.people)
        wait_for_queue(setup.account_id, 300)
        if args.find_peak or args.rate is None:
            peak = find_peak(host, env, args.step_seconds, out)
            if args.find_peak:
                return
            wait_for_queue(setup.account_id, 600)
            rate = peak / 2
        else:
            rate = args.rate
        say(f"run: {rate:,.0f} req/s over {args.users} users for {args.minutes:g} min "
            f"(warm-up {args.warmup_seconds:g} s)")
        run_locust(host, env, args.users, args.warmup_seconds, rate / args.users,
                   out / "warmup")
        warm = memory(serve)
        step = run_locust(host, env, args.users, args.minutes * 60, rate / args.users,
                          out / "run")
        end = memory(serve)
        left = wait_for_queue(setup.account_id, 0)
        report(step, warm, end, left)
    finally:
        serve.stop()
        if not args.keep:
            drop_database(url)


def report(step: Step, warm: dict[str, int], end: dict[str, int], left: int) -> None:
    say(f"{'path':<44} {'requests':>9} {'errors':>7} {'p50 ms':>7} {'p99 ms':>7}")
    for row in step.rows:
        count = int(row["Request Count"])
        rate = int(row["Failure Count"]) / count if count else 0
        name = f"{row['Type']} {row['Name']}".strip() if row["Name"] != "Aggregated" else "all"
        say(f"{name:<44} {count:>9,} {rate:>7.2%} {row['50%']:>7} {row['99%']:>7}")
    say(f"answered {step.rate:,.0f} req/s; errors {step.failures} of {step.requests:,} "
        f"({step.failures / max(step.requests, 1):.3%}); events left to process at the end {left}")
    say(f"{'process':<22} {'RSS warm MB':>11} {'RSS end MB':>10} {'growth':>7}")
    for label in sorted(set(warm) | set(end)):
        a, b = warm.get(label), end.get(label)
        growth = f"{(b - a) / a:+.1%}" if a and b else "(restarted)"
        say(f"{label:<22} {(a or 0) / 2**20:>11.0f} {(b or 0) / 2**20:>10.0f} {growth:>7}")


if __name__ == "__main__":
    main()
