"""Headless Chromium (Debian's, never a downloaded one) driving the live server.

Each test gets its own Playwright and browser. Playwright's sync API keeps an asyncio loop
running in the calling thread, and Django refuses ORM calls while one runs; a Playwright that
outlived a test would break every later database test of the same (xdist) worker. So the
loop lives exactly as long as one test, Django's async guard is lifted only for that time,
and everything is stopped before pytest-django flushes the database.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = os.environ.get("STRATA_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"


class Browser:
    """A page on the live server, plus numbered screenshots named after the test."""

    def __init__(self, page: Any, base_url: str, test_name: str) -> None:
        self.page = page
        self.base_url = base_url
        self.test_name = re.sub(r"[^A-Za-z0-9_.-]+", "_", test_name)
        self.shots: list[Path] = []

    def goto(self, path: str) -> Any:
        return self.page.goto(self.base_url + path)

    def shot(self, step: str) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{self.test_name}-{len(self.shots) + 1:02d}-{step}.png"
        self.page.screenshot(path=str(path), full_page=True)
        self.shots.append(path)
        return path

    def log_in(self, username: str, password: str) -> None:
        self.goto("/admin/login/")
        self.shot("login")
        self.page.fill("#id_username", username)
        self.page.fill("#id_password", password)
        with self.page.expect_navigation():
            self.page.click("input[type=submit]")


@pytest.fixture
def browser(live_server: Any, request: pytest.FixtureRequest) -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (or run `make test`)")
    from django.db import connections
    from playwright.sync_api import sync_playwright

    with pytest.MonkeyPatch.context() as patch:
        # Only while the loop runs in this thread; the live server's thread has none.
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        with sync_playwright() as playwright:
            chromium = playwright.chromium.launch(
                executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
            )
            context = chromium.new_context(viewport={"width": 1280, "height": 800})
            context.set_default_timeout(15_000)
            page = context.new_page()
            try:
                yield Browser(page, live_server.url, request.node.name)
            finally:
                context.close()
                chromium.close()
                # ORM calls made while the loop ran used connections of their own context.
                connections.close_all()
        wait_for_server_connections_to_close()


def wait_for_server_connections_to_close(timeout: float = 10.0) -> None:
    """The live server's request threads keep their database connections (CONN_MAX_AGE)
    until Chromium's keep-alive sockets close; wait for that, or pytest-django could not drop
    the test database at the end of the session."""
    from django.db import connection

    deadline = time.monotonic() + timeout
    with connection.cursor() as cursor:
        while time.monotonic() < deadline:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            if cursor.fetchone()[0] == 0:
                return
            time.sleep(0.05)
