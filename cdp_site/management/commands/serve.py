"""Run the web server, the django-q2 worker, the stream aggregator and the event processor
together in the foreground until Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from cdp_site.debug import loopback_bind


class Command(BaseCommand):
    help = ("Start gunicorn, the django-q2 cluster, the stream aggregator and the event "
            "processor; stop them all on Ctrl-C or if one dies.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--bind", default=os.environ.get("STRATA_BIND", "127.0.0.1:8000"))
        parser.add_argument("--web-workers", type=int, default=2)

    def handle(self, *args: Any, bind: str, web_workers: int, **options: Any) -> None:
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
        processes = {
            name: subprocess.Popen(command, env=env) for name, command in commands.items()
        }
        where = ("this machine only (loopback)" if loopback_bind(bind)
                 else "every address of this host")
        self.stdout.write(f"Strata is running at http://{bind}/ on {where} (Ctrl-C stops it)")
        stopping = False

        def stop(*_: Any) -> None:
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        try:
            while not stopping:
                for name, process in processes.items():
                    if process.poll() is not None:
                        self.stderr.write(f"{name} exited with {process.returncode}; stopping")
                        stopping = True
                time.sleep(0.5)
        finally:
            for process in processes.values():
                if process.poll() is None:
                    process.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + 15
            for process in processes.values():
                try:
                    process.wait(timeout=max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    process.kill()
