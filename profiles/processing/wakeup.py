"""Waking idle workers when events arrive: PostgreSQL ``LISTEN/NOTIFY``, the poll kept as a
fallback (docs/processing.md, "Waking up").

A statement that queues events (a row into ``profiles_pendingevent``: every collection path,
imports, rebuilds) fires the statement-level trigger ``strata_pending_notify`` (migration
``0010_notify_pending_events``): one ``NOTIFY strata_pending_events`` per statement, whatever
the number of events, and only while a worker is idle. A ``NOTIFY`` takes a database-wide lock
at commit, held through the commit's WAL flush, so notifying commits run one at a time; a
worker that is busy needs no notification (it claims batches until none is left), so the
trigger notifies only when it cannot take the *idle lock* in shared mode:

- an idle worker holds the idle lock (``IDLE_LOCK``, a two-key advisory lock) in exclusive
  mode on its listening connection while it waits, and releases it when it wakes;
- the trigger tries the lock in shared mode for its transaction (collection statements never
  wait on each other: shared locks do not conflict); failing means a worker waits, or is
  about to: it notifies.

A worker that processed events in the last ``RECENT`` second looks again every
``RECENT_POLL`` seconds without the lock (more events are likely: a steady trickle of
single-event requests would otherwise send a NOTIFY each, the worker waking for every event);
only after a quiet second does it go idle. So a busy system sends no notifications, and a quiet
one about one per quiet spell.

A worker going idle takes the lock (waiting for the collection transactions holding it shared
to commit), then looks for events once more before it waits: an event whose statement found
no worker idle committed before the lock was granted, so that look finds it; any later one
notifies. With several idle workers one holds the lock and the others wait for it at most
``LOCK_WAIT``, then wait for notifications too (a notification reaches every listener). When
the listening connection fails, the worker sleeps its poll interval and connects again.
"""

from __future__ import annotations

import contextlib
import logging
import time
from typing import TYPE_CHECKING, Any

import psycopg
from django.db import connection

from cdp_site.dburl import connect_kwargs

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["CHANNEL", "IDLE_LOCK", "RECENT", "RECENT_POLL", "Waker"]

log = logging.getLogger(__name__)

CHANNEL = "strata_pending_events"
# (classid, objid) of a two-key advisory lock: a key space apart from the pipeline's one-key
# locks ("STRA" in ASCII, 1).
IDLE_LOCK = (0x53545241, 1)
LOCK_WAIT = "200ms"  # how long a worker waits for the idle lock another idle worker holds
RECENT = 1.0  # seconds after its last events during which a worker polls instead of idling
RECENT_POLL = 0.05  # its poll interval meanwhile


class Waker:
    """A worker's listening connection: ``idle`` takes the idle lock, ``wait`` sleeps until a
    notification or the timeout, ``awake`` releases the lock."""

    def __init__(self, settings_dict: dict[str, Any] | None = None) -> None:
        self._settings = settings_dict or connection.settings_dict
        self._conn: psycopg.Connection[Any] | None = None
        self.holding = False

    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(**connect_kwargs(self._settings), autocommit=True)
            self._conn.execute(f"LISTEN {CHANNEL}")
            self._conn.execute(f"SET lock_timeout = '{LOCK_WAIT}'")
            self.holding = False
        return self._conn

    def listen(self) -> bool:
        """Connect and listen (before the first look for events, so none is missed); False
        when the database cannot be reached (the worker polls meanwhile)."""
        try:
            self._connection()
        except psycopg.Error as exc:
            log.warning("cannot listen for new events (polling instead): %s", exc)
            self.close()
            return False
        return True

    def idle(self) -> bool:
        """Take the idle lock before a last look for events; False when another idle worker
        holds it (this one then only listens) or the connection failed."""
        try:
            conn = self._connection()
            if not self.holding:
                conn.execute("SELECT pg_advisory_lock(%s, %s)", IDLE_LOCK)
                self.holding = True
        except psycopg.errors.LockNotAvailable:
            return False
        except psycopg.Error as exc:
            log.warning("cannot take the idle lock (polling instead): %s", exc)
            self.close()
            return False
        return True

    def wait(self, timeout: float, should_stop: Callable[[], bool] | None = None) -> bool:
        """Sleep until a notification arrives or ``timeout`` seconds pass (in slices of at
        most a second, so that ``should_stop`` is noticed); True when woken by a
        notification. Notifications already queued (sent while the worker was busy) are taken
        too, so that one wake-up serves them all."""
        deadline = time.monotonic() + timeout
        try:
            conn = self._connection()
            woken = False
            while not woken and (remaining := deadline - time.monotonic()) > 0:
                if should_stop is not None and should_stop():
                    return False
                for _ in conn.notifies(timeout=min(remaining, 1.0), stop_after=1):
                    woken = True
            if woken:
                for _ in conn.notifies(timeout=0):
                    pass
            return woken
        except psycopg.Error as exc:
            log.warning("listening for new events failed (polling instead): %s", exc)
            self.close()
            time.sleep(timeout)
            return False

    def awake(self) -> None:
        """Release the idle lock: statements queueing events stop notifying."""
        if not self.holding or self._conn is None:
            return
        try:
            self._conn.execute("SELECT pg_advisory_unlock(%s, %s)", IDLE_LOCK)
            self.holding = False
        except psycopg.Error as exc:
            log.warning("cannot release the idle lock: %s", exc)
            self.close()

    def close(self) -> None:
        """Close the listening connection (releasing the lock with it)."""
        if self._conn is not None:
            with contextlib.suppress(psycopg.Error):  # closing a broken connection
                self._conn.close()
        self._conn = None
        self.holding = False
