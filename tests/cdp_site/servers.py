"""A real gunicorn serving Strata on the test database, for tests of what only a real server
shows (its access log, connections kept across requests)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests
from django.db import connection

from cdp_site.dburl import database_url

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def gunicorn(*args: str) -> Iterator[str]:
    """gunicorn (one worker, DEBUG on) on a free loopback port until the block ends; yields
    its base URL once it answers ``/health/``."""
    port = free_port()
    env = {"DATABASE_URL": database_url(connection.settings_dict), "PATH": "/usr/bin:/bin",
           "DEBUG": "1"}
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "cdp_site.wsgi:application", "--bind",
         f"127.0.0.1:{port}", "--workers", "1", *args], cwd=ROOT, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                requests.get(f"{base}/health/", timeout=60)
                break
            except (requests.ConnectionError, requests.Timeout):
                assert time.monotonic() < deadline, "gunicorn did not start"
                time.sleep(0.2)
        yield base
    finally:
        server.terminate()
        server.wait(timeout=30)
