"""Fault injection: collection, decisions and profile reads for N minutes while the processes
of a real ``manage.py serve`` are killed with SIGKILL and PostgreSQL connections are cut.

Sets up its own database (dropped and created afresh: ``strata_soak`` on DATABASE_URL's server,
or on the embedded one when DATABASE_URL is unset; ``--database-url`` names another), migrates
it, creates an account, a write key, an Admin token, an A/B experience and an identity schema on
the ``default`` stream: ``user_id`` (rank 1, ``userId``), ``_uid`` (rank 2, ``anonymousId``, the
visitor identifier decisions read) and ``units`` (an int summed over the profile's events, one
per event). Then it starts ``manage.py serve`` in production settings (DEBUG=0) and runs, in
threads:

- collectors: ``POST /v1/batch`` (20 messages) and ``POST /v1/track`` (one), Segment messages of
  ``--people`` people, each event with a unique messageId, ``properties.unit = 1``, an anonymous
  cookie of its person and, for 70 % of them, the person's userId. A request that fails
  (refused connection, timeout, 5xx) is sent again, the same messages, as Segment's clients do;
  an event is *accepted* when an answer 200 carried it;
- a decider: ``POST /api/v1/decide`` for known cookies; a reader: ``GET
  /api/v1/profiles/user_id/<id>`` with the token;
- chaos, every 2 to 6 s (``--kill-every``): SIGKILL of a gunicorn worker, the gunicorn master,
  the event processor, the django-q2 cluster or the aggregator (children of serve), or
  ``pg_terminate_backend`` on every other connection to the database.

serve restarts the children it loses (it runs with ``--give-up-after 1000``: the deaths are the
soak's doing); should serve itself exit, the soak starts it again and counts it. At the end it
stops the chaos, sends one identify per person and cookie (so every anonymous profile merges
into its person's), waits for the processing queue to drain and checks: every accepted event is
in the raw store once (no duplicate, none lost), every stored event was processed once (one
profile event each), every person has exactly one live profile whose ``units`` and event count
equal that person's stored events (no profile lost or repeated an update). It prints the figures
and exits 1 if any check fails.

Usage:

    .venv/bin/python bench/soak.py [--minutes 5 | --seconds 60] [--people 200]
        [--kill-every 2,6] [--seed 1] [--database-url URL] [--json out.json] [--keep]
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import drop_database, fresh_database, server_url  # noqa: E402
from cdp_site.dburl import with_database  # noqa: E402

PEPPER = "bench-soak-pepper"
COOKIES_PER_PERSON = 3
BATCH = 20
KILL_WEIGHTS = {"processor": 25, "web-worker": 25, "db": 25, "web": 10, "worker": 10,
                "aggregator": 5}
TIMEOUT = (3.0, 20.0)


def say(line: str) -> None:
    print(line, flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def production_env(url: str) -> dict[str, str]:
    return {**os.environ, "DATABASE_URL": url, "DEBUG": "0", "SECRET_KEY": "soak-" + "k" * 50,
            "ALLOWED_HOSTS": "127.0.0.1,localhost", "STRATA_TOKEN_PEPPER": PEPPER,
            "SECURE_SSL_REDIRECT": "false", "LOG_LEVEL": "WARNING",
            "DJANGO_SETTINGS_MODULE": "cdp_site.settings"}


# ---- set-up -------------------------------------------------------------------------------


@dataclass
class Setup:
    account_id: int
    write_key: str
    token: str


def set_up(url: str) -> Setup:
    os.environ.update(production_env(url))
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    from profiles.schema.drafts import save_field, save_mapping
    from profiles.schema.versions import publish
    from tests.conftest import make_account, make_token, make_write_key
    from tests.experiences.decide_helpers import make_experience

    call_command("migrate", verbosity=0)
    account = make_account("Soak", "soak")
    _key, write_key = make_write_key(account, "Soak")
    _token, token = make_token(account, ["admin"])
    user_id = save_field(account, name="user_id", type="string", merge_operator="latest",
                         is_identifier=True, identifier_rank=1, identifier_capacity=1)
    cookie = save_field(account, name="_uid", type="[]string", merge_operator="merge",
                        capacity=50, is_identifier=True, identifier_rank=2,
                        identifier_capacity=50)
    units = save_field(account, name="units", type="int", merge_operator="sum")
    save_mapping(account, field=user_id, stream="default", expression="userId")
    save_mapping(account, field=cookie, stream="default", expression="anonymousId")
    save_mapping(account, field=units, stream="default", expression="properties.unit")
    publish(account)
    make_experience(account, "hero", ["control", "bold"])
    setup = Setup(account.pk, write_key, token)
    connection.close()  # the chaos cuts every connection but its own
    return setup


# ---- serve and its children ---------------------------------------------------------------


class Serve:
    """``manage.py serve`` on a port; started again by ``ensure`` when it has exited."""

    def __init__(self, url: str, port: int, log: Path) -> None:
        self.url, self.port, self.log_path = url, port, log
        self.process: subprocess.Popen[bytes] | None = None
        self.restarts = 0
        # every process of serve's tree (pid, start time), for the final clean-up
        self.seen: set[tuple[int, float]] = set()
        self.log = log.open("ab")

    def start(self) -> None:
        # The faults are not the children's: serve must never give up on one that is killed
        # often. Its status file is this run's, not the checkout's var/serve.json.
        env = {**production_env(self.url),
               "STRATA_SERVE_STATUS": str(self.log_path.with_suffix(".json"))}
        self.process = subprocess.Popen(
            [sys.executable, "manage.py", "serve", "--bind", f"127.0.0.1:{self.port}",
             "--give-up-after", "1000"],
            cwd=ROOT, env=env, stdout=self.log, stderr=self.log, start_new_session=True)

    def ensure(self) -> bool:
        """Start serve again if it exited; True when it had."""
        if self.process is not None and self.process.poll() is None:
            return False
        self.restarts += 1
        self.start()
        return True

    def children(self) -> dict[str, list[int]]:
        """Serve's children by role, as the chaos picks them."""
        import psutil

        out: dict[str, list[int]] = defaultdict(list)
        if self.process is None:
            return out
        try:
            tree = psutil.Process(self.process.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return out
        for child in tree:
            try:
                cmdline = " ".join(child.cmdline())
                parent = child.ppid()
                self.seen.add((child.pid, child.create_time()))
            except psutil.Error:
                continue
            if "gunicorn" in cmdline:
                out["web" if parent == self.process.pid else "web-worker"].append(child.pid)
            elif "process_events" in cmdline:
                out["processor"].append(child.pid)
            elif "qcluster" in cmdline:
                out["worker"].append(child.pid)
            elif "aggregate_streams" in cmdline:
                out["aggregator"].append(child.pid)
        return out

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
        import psutil

        self.children()
        for pid, started in self.seen:  # ours still alive: orphans of a killed parent
            with contextlib.suppress(psutil.Error):
                process = psutil.Process(pid)
                if process.create_time() == started:  # not a reused pid
                    process.kill()
        for process in psutil.process_iter():  # orphans never seen: started with our URL
            with contextlib.suppress(psutil.Error):
                if (process.environ().get("DATABASE_URL") == self.url
                        and process.pid != os.getpid()):
                    process.kill()
        self.log.close()


# ---- load ---------------------------------------------------------------------------------


@dataclass
class Tally:
    accepted: set[str] = field(default_factory=set)
    answers: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self, path: str, outcome: str) -> None:
        with self.lock:
            self.answers[f"{path} {outcome}"] += 1


def person_of(message_id: str) -> int:
    return int(message_id.split("-")[1])


def message(mid: str, person: int, cookie: int, identified: bool,
            kind: str = "track") -> dict[str, Any]:
    out: dict[str, Any] = {"type": kind, "messageId": mid,
                           "anonymousId": f"c-{person}-{cookie}", "properties": {"unit": 1}}
    if kind == "track":
        out["event"] = "Soak"
    if identified:
        out["userId"] = f"u-{person}"
    return out


class Client:
    """One thread's HTTP session against serve, with the retry rule of Segment's clients."""

    def __init__(self, base: str, setup: Setup, tally: Tally) -> None:
        import requests

        self.base, self.tally = base, tally
        self.session = requests.Session()
        auth = base64.b64encode(f"{setup.write_key}:".encode()).decode()
        self.write = {"Authorization": f"Basic {auth}"}
        self.read = {"Authorization": f"Bearer {setup.token}"}

    def call(self, method: str, path: str, label: str, **kwargs: Any) -> int | None:
        import requests

        try:
            response = self.session.request(method, self.base + path, timeout=TIMEOUT,
                                            **kwargs)
        except requests.RequestException as exc:
            self.tally.answer(label, type(exc).__name__)
            return None
        self.tally.answer(label, str(response.status_code))
        return response.status_code

    def deliver(self, path: str, body: dict[str, Any], ids: list[str], until: float) -> bool:
        """Send until answered 200 (the events are then accepted) or ``until`` passes."""
        pause = 0.1
        while time.monotonic() < until:
            if self.call("POST", path, f"POST {path}", json=body, headers=self.write) == 200:
                with self.tally.lock:
                    self.tally.accepted.update(ids)
                return True
            time.sleep(pause)
            pause = min(pause * 2, 2.0)
        return False


def collector(n: int, client: Client, people: int, stop: threading.Event, give_up: float,
              seed: int) -> None:
    rng = random.Random(seed * 1000 + n)
    seq = 0
    while not stop.is_set():
        messages = []
        for _ in range(BATCH if rng.random() < 0.8 else 1):
            seq += 1
            person = rng.randrange(people)
            messages.append(message(f"m-{person}-{n}-{seq}", person,
                                    rng.randrange(COOKIES_PER_PERSON), rng.random() < 0.7))
        ids = [m["messageId"] for m in messages]
        if len(messages) == 1:
            client.deliver("/v1/track", messages[0], ids, give_up)
        else:
            client.deliver("/v1/batch", {"batch": messages}, ids, give_up)


def decider(client: Client, people: int, stop: threading.Event, seed: int) -> None:
    rng = random.Random(seed)
    while not stop.is_set():
        uid = f"c-{rng.randrange(people)}-{rng.randrange(COOKIES_PER_PERSON)}"
        answered = client.call("POST", "/api/v1/decide", "POST /api/v1/decide",
                               json={"uid": uid}, headers=client.write)
        time.sleep(0.02 if answered else 0.5)


def reader(client: Client, people: int, stop: threading.Event, seed: int) -> None:
    rng = random.Random(seed)
    while not stop.is_set():
        answered = client.call("GET", f"/api/v1/profiles/user_id/u-{rng.randrange(people)}",
                               "GET /api/v1/profiles/user_id/<id>", headers=client.read)
        time.sleep(0.02 if answered else 0.5)


# ---- chaos --------------------------------------------------------------------------------


def cut_connections(url: str) -> int:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()").fetchall()
    return len(rows)


def chaos(serve: Serve, url: str, stop: threading.Event, every: tuple[float, float],
          seed: int, kills: Counter[str]) -> None:
    rng = random.Random(seed)
    roles, weights = zip(*KILL_WEIGHTS.items(), strict=True)
    while not stop.wait(rng.uniform(*every)):
        role = rng.choices(roles, weights)[0]
        if role == "db":
            try:
                cut_connections(url)
                kills["db"] += 1
            except Exception as exc:  # the database is not what is under test here
                say(f"  chaos: cutting connections failed: {exc}")
            continue
        pids = serve.children().get(role, [])
        if not pids:
            continue
        try:
            os.kill(rng.choice(pids), signal.SIGKILL)
            kills[role] += 1
        except ProcessLookupError:
            pass


# ---- the checks ---------------------------------------------------------------------------


def pending(account_id: int) -> int:
    from django.db import connection

    from profiles.models import PendingEvent

    connection.close()
    return PendingEvent.objects.filter(account_id=account_id).count()


def verify(setup: Setup, accepted: set[str], people: int) -> dict[str, Any]:
    from django.db import connection
    from django.db.models import Count

    from profiles.models import FailedEvent, Identifier, Profile, ProfileEvent, RawEvent

    connection.close()
    account = setup.account_id
    raw = dict(RawEvent.objects.filter(account_id=account).values("message_id")
               .annotate(n=Count("id")).values_list("message_id", "n"))
    raw_ids = dict(RawEvent.objects.filter(account_id=account).values_list("id", "message_id"))
    processed = Counter(dict(ProfileEvent.objects.filter(account_id=account)
                             .values("raw_event_id").annotate(n=Count("id"))
                             .values_list("raw_event_id", "n")))
    per_person = Counter(person_of(mid) for mid in raw)
    holders = dict(Identifier.objects.filter(account_id=account, field="user_id", active=True)
                   .values_list("value", "profile_id"))
    live = {p.pk: p for p in Profile.objects.filter(account_id=account,
                                                    merged_into__isnull=True)}
    lost_updates = repeated_updates = missing_people = 0
    for person in range(people):
        profile = live.get(holders.get(f"u-{person}", -1))
        expected = per_person.get(person, 0)
        if profile is None:
            missing_people += 1
            lost_updates += expected
            continue
        units = int(profile.field_values.get("units") or 0)
        lost_updates += max(0, expected - units) + max(0, expected - profile.event_count)
        repeated_updates += max(0, units - expected) + max(0, profile.event_count - expected)
    return {
        "accepted": len(accepted),
        "stored": len(raw),
        "stored_unanswered": len(set(raw) - accepted),
        "processed": sum(1 for rid in raw_ids if processed.get(rid)),
        "duplicates": sum(n - 1 for n in raw.values()),
        "lost": len(accepted - set(raw)),
        "processed_twice": sum(n - 1 for n in processed.values() if n > 1),
        "unprocessed": sum(1 for rid in raw_ids if not processed.get(rid)),
        "failed_events": FailedEvent.objects.filter(account_id=account).count(),
        "people": people,
        "live_profiles": len(live),
        "missing_people": missing_people,
        "lost_updates": lost_updates,
        "repeated_updates": repeated_updates,
    }


def link_everyone(client: Client, people: int, until: float) -> None:
    """One identify per person and cookie: every anonymous profile joins its person's."""
    messages = [message(f"l-{p}-{c}", p, c, True, kind="identify")
                for p in range(people) for c in range(COOKIES_PER_PERSON)]
    for start in range(0, len(messages), 100):
        chunk = messages[start:start + 100]
        if not client.deliver("/v1/batch", {"batch": chunk}, [m["messageId"] for m in chunk],
                              until):
            raise SystemExit("the linking events were not accepted before the deadline")


# ---- main ---------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--seconds", type=float, default=None, help="overrides --minutes")
    parser.add_argument("--people", type=int, default=200)
    parser.add_argument("--collectors", type=int, default=3)
    parser.add_argument("--kill-every", default="2,6", help="seconds between faults: MIN,MAX")
    parser.add_argument("--faults", type=int, default=0,
                        help="go on past the time until this many faults were injected "
                             "(at most five times the time again)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--drain-seconds", type=float, default=300.0)
    parser.add_argument("--json", default=None, help="also write the figures to this file")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = parser.parse_args()
    seconds = args.seconds if args.seconds is not None else args.minutes * 60
    every = tuple(float(x) for x in args.kill_every.split(","))
    assert len(every) == 2, "--kill-every MIN,MAX"

    url = args.database_url or with_database(server_url(), "strata_soak")
    fresh_database(url)
    began = time.monotonic()
    setup = set_up(url)
    port = free_port()
    log = Path(tempfile.gettempdir()) / f"strata-soak-{port}.log"
    say(f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores, set up in "
        f"{time.monotonic() - began:.0f} s; serve on 127.0.0.1:{port} (log {log}), "
        f"{seconds:.0f} s of load and faults every {every[0]:g}-{every[1]:g} s")
    serve = Serve(url, port, log)
    tally, kills, loaded = Tally(), Counter[str](), 0.0
    stop_load, stop_chaos = threading.Event(), threading.Event()
    base = f"http://127.0.0.1:{port}"
    try:
        serve.start()
        serve.restarts = 0
        wait_until_up(base, serve)
        end = time.monotonic() + seconds
        give_up = end + 6 * seconds + 120  # a request in flight at the end keeps trying
        threads = [threading.Thread(target=collector, args=(
            n, Client(base, setup, tally), args.people, stop_load, give_up, args.seed))
            for n in range(args.collectors)]
        threads += [
            threading.Thread(target=decider, args=(Client(base, setup, tally), args.people,
                                                   stop_load, args.seed)),
            threading.Thread(target=reader, args=(Client(base, setup, tally), args.people,
                                                  stop_load, args.seed)),
        ]
        chaos_thread = threading.Thread(target=chaos, args=(serve, url, stop_chaos, every,
                                                            args.seed, kills))
        for thread in [*threads, chaos_thread]:
            thread.start()
        overtime, loaded = end + 5 * seconds, time.monotonic()

        def going_on() -> bool:
            now = time.monotonic()
            return now < end or (sum(kills.values()) < args.faults and now < overtime)

        while going_on():
            if serve.ensure():
                say(f"  serve had exited; started again ({serve.restarts})")
            time.sleep(0.5)
        stop_chaos.set()
        chaos_thread.join()
        loaded = time.monotonic() - loaded
        stop_load.set()
        while any(t.is_alive() for t in threads):
            serve.ensure()
            time.sleep(0.5)
        serve.ensure()
        say(f"  load stopped; {len(tally.accepted)} events accepted")
        link_everyone(Client(base, setup, tally), args.people, time.monotonic() + 120)
        drained = time.monotonic() + args.drain_seconds
        while pending(setup.account_id) and time.monotonic() < drained:
            serve.ensure()
            time.sleep(1)
        say(f"  queue drained in {time.monotonic() - drained + args.drain_seconds:.0f} s")
    finally:
        serve.stop()
    figures = verify(setup, tally.accepted, args.people)
    figures.update(seconds=round(loaded), serve_restarts=serve.restarts,
                   kills={k: v for k, v in kills.items() if v},
                   answers=dict(sorted(tally.answers.items())))
    report(figures)
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))
    if not args.keep:
        drop_database(url)
    bad = (figures["duplicates"], figures["lost"], figures["processed_twice"],
           figures["unprocessed"], figures["lost_updates"], figures["repeated_updates"],
           figures["missing_people"])
    return 1 if any(bad) else 0


def wait_until_up(base: str, serve: Serve) -> None:
    import requests

    deadline = time.monotonic() + 300  # a first collectstatic on a busy machine is slow
    while time.monotonic() < deadline:
        serve.ensure()
        try:
            requests.get(base + "/health/", timeout=5)
            return
        except requests.RequestException:
            time.sleep(0.5)
    raise SystemExit("serve did not answer within 300 s")


def report(f: dict[str, Any]) -> None:
    kills = ", ".join(f"{k} {v}" for k, v in sorted(f["kills"].items())) or "none"
    say(f"{f['seconds']} s of load; faults: {kills}; serve exited and was started again by "
        f"the soak {f['serve_restarts']} times")
    say(f"events accepted {f['accepted']}")
    say(f"events stored {f['stored']} (stored although no 200 carried them: "
        f"{f['stored_unanswered']})")
    say(f"events processed {f['processed']} (twice: {f['processed_twice']}, not at all: "
        f"{f['unprocessed']}, set aside as failed: {f['failed_events']})")
    say(f"duplicates {f['duplicates']}")
    say(f"lost {f['lost']}")
    say(f"profiles: {f['people']} people, {f['live_profiles']} live profiles, people without "
        f"one {f['missing_people']}, updates lost {f['lost_updates']}, repeated "
        f"{f['repeated_updates']}")
    say("answers: " + ", ".join(f"{k}: {v}" for k, v in f["answers"].items()))


if __name__ == "__main__":
    sys.exit(main())
