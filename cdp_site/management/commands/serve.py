"""Run the web server, the django-q2 worker, the stream aggregator and the event processor
together in the foreground until Ctrl-C, and keep them running.

``serve`` supervises its children (#18 finding 13): one that dies is started again after a
backoff (1 s, doubling to 30 s; back to 1 s once it has run a minute), the death is logged, and
every child's state is written to ``STRATA_SERVE_STATUS`` (JSON), which ``/health/`` and the
dashboard show. Only a child that keeps dying (``--give-up-after`` deaths within two minutes)
stops them all, and ``serve`` then exits with status 1, so that ``make run`` fails and a process
manager restarts it. Ctrl-C or SIGTERM stops everything with status 0.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from cdp_site.debug import loopback_bind

FIRST_BACKOFF = 1.0
MAX_BACKOFF = 30.0
HEALTHY_AFTER = 60.0  # a child that ran this long starts again from the first backoff
DEATH_WINDOW = 120.0


@dataclass
class Child:
    name: str
    command: list[str]
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    restart_at: float | None = None
    backoff: float = FIRST_BACKOFF
    deaths: list[float] = field(default_factory=list)
    restarts: int = 0
    last_exit: int | None = None
    last_exit_at: str | None = None

    def state(self) -> dict[str, Any]:
        running = self.process is not None and self.process.poll() is None
        return {"status": "running" if running else "restarting",
                "pid": self.process.pid if running and self.process else None,
                "restarts": self.restarts, "last_exit_code": self.last_exit,
                "last_exit_at": self.last_exit_at}


class Command(BaseCommand):
    help = ("Start gunicorn, the django-q2 cluster, the stream aggregator and the event "
            "processor; restart one that dies; stop them all on Ctrl-C.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--bind", default=os.environ.get("STRATA_BIND", "127.0.0.1:8000"))
        parser.add_argument("--web-workers", type=int, default=2)
        parser.add_argument("--give-up-after", type=int, default=5,
                            help="deaths of one child within two minutes that stop serve "
                                 "(exit status 1)")

    def handle(self, *args: Any, bind: str, web_workers: int, give_up_after: int,
               **options: Any) -> None:
        if settings.DEBUG and not loopback_bind(bind):
            raise CommandError(
                f"DEBUG is on: its error pages show settings, so Strata listens on loopback "
                f"only (127.0.0.1:8000), not {bind}. Set DEBUG=0 (and the production settings, "
                f"docs/configuration.md) to listen on other addresses.")
        env = {**os.environ, "DATABASE_URL": settings.DATABASE_URL}
        python = sys.executable
        commands = {
            "web": [
                python, "-m", "gunicorn", "cdp_site.wsgi:application", "--bind", bind,
                "--workers", str(web_workers), "--access-logfile", "-",
                # no query strings of collection paths, write keys cut (cdp_site/access_log.py)
                "--logger-class", "cdp_site.access_log.AccessLogger",
                # Threads keep a worker's heartbeat going during a long bulk import, which
                # a sync worker would be killed for after --timeout.
                "--worker-class", "gthread", "--threads", "4", "--timeout", "120",
                "--graceful-timeout", "5",
            ],
            "worker": [python, "manage.py", "qcluster"],
            "aggregator": [python, "manage.py", "aggregate_streams", "--loop"],
            "processor": [python, "manage.py", "process_events", "--loop"],
        }
        if not settings.DEBUG:
            subprocess.run([python, "manage.py", "collectstatic", "--noinput", "-v0"],
                           check=True, env=env)
        children = [Child(name, command) for name, command in commands.items()]
        status_path = Path(settings.STRATA_SERVE_STATUS)
        for child in children:
            self._start(child, env)
        where = ("this machine only (loopback)" if loopback_bind(bind)
                 else "every address of this host")
        self.stdout.write(f"Strata is running at http://{bind}/ on {where} (Ctrl-C stops it)")
        self.stdout.flush()
        stopping = False

        def stop(*_: Any) -> None:
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        failed: Child | None = None
        try:
            while not stopping and failed is None:
                for child in children:
                    failed = failed or self._watch(child, env, give_up_after)
                _write_status(status_path, children, failed)
                time.sleep(0.5)
        finally:
            _stop_all(children)
            _write_status(status_path, children, failed, stopped=True)
        if failed is not None:
            self.stderr.write(f"{failed.name} died {len(failed.deaths)} times within "
                              f"{DEATH_WINDOW:.0f} s; stopped everything")
            sys.exit(1)

    def _start(self, child: Child, env: dict[str, str]) -> None:
        child.process = subprocess.Popen(child.command, env=env)
        child.started_at = time.monotonic()
        child.restart_at = None

    def _watch(self, child: Child, env: dict[str, str], give_up_after: int) -> Child | None:
        """Notice a death, start the child again when its backoff is over; the child if it
        keeps dying."""
        now = time.monotonic()
        if child.restart_at is not None:
            if now >= child.restart_at:
                child.restarts += 1
                self.stderr.write(f"restarting {child.name} (restart {child.restarts})")
                self._start(child, env)
            return None
        assert child.process is not None
        code = child.process.poll()
        if code is None:
            return None
        if now - child.started_at >= HEALTHY_AFTER:
            child.backoff = FIRST_BACKOFF
        child.deaths = [at for at in child.deaths if now - at < DEATH_WINDOW] + [now]
        child.last_exit, child.last_exit_at = code, timezone.now().isoformat()
        if len(child.deaths) >= give_up_after:
            return child
        self.stderr.write(f"{child.name} exited with {code}; restarting it in "
                          f"{child.backoff:.0f} s")
        child.restart_at = now + child.backoff
        child.backoff = min(MAX_BACKOFF, child.backoff * 2)
        return None


def _write_status(path: Path, children: list[Child], failed: Child | None, *,
                  stopped: bool = False) -> None:
    """The children's states for /health/ and the dashboard (written whole, then renamed)."""
    state = {"pid": os.getpid(), "updated_at": timezone.now().isoformat(),
             "status": "stopped" if stopped else "running",
             "gave_up_on": failed.name if failed else None,
             "children": {child.name: child.state() for child in children}}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(state))
        temporary.replace(path)
    except OSError:
        pass  # a status that cannot be written does not stop the site


def _stop_all(children: list[Child]) -> None:
    running = [c.process for c in children if c.process is not None and c.process.poll() is None]
    for process in running:
        process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 15
    for process in running:
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
