"""``manage.py serve`` supervises its children (#18 finding 13): the event processor killed
with SIGKILL comes back, the site keeps answering, /health/ shows the restart and the
processor's own heartbeat; a child that keeps dying stops serve with a non-zero status."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests
from django.db import connection

from cdp_site.dburl import database_url
from tests.cdp_site.servers import ROOT, free_port

pytestmark = [pytest.mark.slow, pytest.mark.own_connection]


def wait_for(check: Callable[[], Any], seconds: float = 120) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        try:
            value = check()
        except (OSError, ValueError, KeyError, requests.RequestException):
            value = None
        if value:
            return value
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.3)


def serve(tmp_path: Path, *args: str, **env: str) -> tuple[subprocess.Popen[bytes], str, Path]:
    port, status = free_port(), tmp_path / "serve.json"
    process = subprocess.Popen(
        [sys.executable, "manage.py", "serve", "--bind", f"127.0.0.1:{port}",
         "--web-workers", "1", *args], cwd=ROOT,
        env={**os.environ, "DATABASE_URL": database_url(connection.settings_dict),
             "STRATA_SERVE_STATUS": str(status), "DEBUG": "1", "STRATA_Q_WORKERS": "1", **env})
    return process, f"http://127.0.0.1:{port}", status


def children(status: Path) -> dict[str, Any]:
    return dict(json.loads(status.read_text())["children"])


def test_a_killed_processor_comes_back_and_the_site_keeps_answering(
        transactional_db: Any, tmp_path: Path) -> None:
    process, base, status = serve(tmp_path)
    try:
        first = wait_for(lambda: children(status)["processor"]["pid"])
        wait_for(lambda: requests.get(f"{base}/health/", timeout=30).json()["processor"][
            "status"] == "ok")  # the processor's own heartbeat
        os.kill(first, signal.SIGKILL)
        second = wait_for(lambda: (children(status)["processor"]["pid"] or first) != first
                          and children(status)["processor"]["pid"])
        assert second != first
        assert process.poll() is None  # serve and its other children kept running
        health = requests.get(f"{base}/health/", timeout=30).json()
        assert health["processes"]["processor"]["restarts"] == 1
        assert health["processes"]["processor"]["last_exit_code"] == -signal.SIGKILL
        assert health["processes"]["web"]["status"] == "running"
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0  # a stop asked for is not a failure


def test_a_child_that_keeps_dying_stops_serve_with_status_1(transactional_db: Any,
                                                            tmp_path: Path) -> None:
    process, _base, status = serve(tmp_path, "--give-up-after", "2")
    try:
        for _ in range(2):  # kill the processor each time it is up again
            pid = wait_for(lambda: children(status)["processor"]["pid"])
            os.kill(pid, signal.SIGKILL)
            wait_for(lambda: children(status)["processor"]["pid"] != pid)  # noqa: B023
        assert process.wait(timeout=60) == 1
    finally:
        if process.poll() is None:
            process.kill()
