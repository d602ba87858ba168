"""Idle workers are woken by the events that arrive (PostgreSQL LISTEN/NOTIFY from the statement
that queues them; profiles.processing.wakeup), the poll kept as a fallback: one notification
per statement, and only while a worker is idle."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from django.test import Client

from profiles.models import PendingEvent, RawEvent
from profiles.processing.wakeup import CHANNEL, IDLE_LOCK
from tests import dbenv
from tests.profiles.conftest import basic_auth, make_write_key
from tests.profiles.processing import identity_schema, live_profiles, send

committing = pytest.mark.django_db(transaction=True, serialized_rollback=True)
ROOT = Path(__file__).resolve().parents[2]
DEADLINE = 60.0  # seconds: generous; the worker's poll interval in these tests is an hour


def wait_for(condition: Callable[[], Any], what: str, deadline: float = DEADLINE) -> Any:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        result = condition()
        if result:
            return result
        time.sleep(0.05)
    raise AssertionError(f"not within {deadline:.0f} s: {what}")


@pytest.fixture
def listener() -> Iterator[psycopg.Connection[Any]]:
    """A connection of the test's own that listens on the channel, as an idle worker does."""
    conn = dbenv.connect(autocommit=True)
    conn.execute(f"LISTEN {CHANNEL}")
    try:
        yield conn
    finally:
        conn.close()


def notifications_until_marker(conn: psycopg.Connection[Any]) -> list[str]:
    """The payloads received before a marker this sends now (notifications arrive in commit
    order, so those of statements committed earlier come first)."""
    with dbenv.connect(autocommit=True) as other:
        other.execute("SELECT pg_notify(%s, 'marker')", [CHANNEL])
    payloads = []
    for note in conn.notifies(timeout=DEADLINE):
        if note.payload == "marker":
            return payloads
        payloads.append(note.payload)
    raise AssertionError("the marker notification never came")


@pytest.mark.own_connection
@committing
def test_a_statement_queueing_events_notifies_once_while_a_worker_is_idle(listener) -> None:
    from tests.conftest import make_account

    account = make_account("Notified")
    identity_schema(account)
    listener.execute("SELECT pg_advisory_lock(%s, %s)", IDLE_LOCK)  # as an idle worker
    send(account, *[{"_uid": f"c{i}"} for i in range(5)])  # one statement, five events
    send(account, {"_uid": "c5"})
    assert notifications_until_marker(listener) == ["", ""]
    listener.execute("SELECT pg_advisory_unlock(%s, %s)", IDLE_LOCK)  # the worker is busy
    send(account, *[{"_uid": f"d{i}"} for i in range(3)])
    assert notifications_until_marker(listener) == []
    assert PendingEvent.objects.filter(account=account).count() == 9


def idle_lock_held() -> bool:
    with dbenv.connect(autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid = %s "
            "AND objid = %s AND objsubid = 2 AND granted", IDLE_LOCK).fetchone()
    return bool(row and row[0])


@pytest.mark.own_connection
@committing
def test_an_idle_worker_wakes_on_an_event_without_waiting_for_its_poll(client: Client) -> None:
    """A `process_events --loop` worker polling once an hour processes an event sent through
    HTTP while it is idle, well within the deadline: it was woken by the event."""
    from tests.conftest import make_account

    account = make_account("Woken")
    identity_schema(account, stream="default")
    _key, secret = make_write_key(account)
    worker = subprocess.Popen(
        [sys.executable, "manage.py", "process_events", "--loop", "--interval", "3600",
         "--account", str(account.pk)], cwd=ROOT, env=dbenv.subprocess_env(),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(idle_lock_held, "the worker is idle, holding the idle lock")
        for n, cookie in enumerate(["visitor-1", "visitor-2"], start=1):
            response = client.post("/v1/track", data=json.dumps(
                {"type": "track", "event": "page_view", "anonymousId": cookie,
                 "properties": {}, "_uid": cookie, "page": f"p{n}"}),
                content_type="application/json", HTTP_AUTHORIZATION=basic_auth(secret))
            assert response.status_code == 200, response.content
            wait_for(lambda n=n: len(live_profiles(account)) == n,
                     f"event {n} processed by the idle worker")
            wait_for(idle_lock_held, "the worker is idle again")
        assert not PendingEvent.objects.filter(account=account).exists()
        assert RawEvent.objects.filter(account=account).count() == 2
    finally:
        worker.terminate()
        out, err = worker.communicate(timeout=DEADLINE)
    assert worker.returncode == 0, err
    assert "woken by new events" in out
