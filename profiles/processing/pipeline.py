"""Processing: raw events become profiles (DESIGN.md, "How data travels", steps 1-4 and on).

This module is the runner: it claims batches of pending events, keeps their order, runs the
steps and records the outcome. A run is a list of steps named in
``settings.STRATA_PIPELINE_STEPS``, each a plain function over a ``Batch``
(profiles.processing.batch, which says what each step hands the later ones). The profiles
steps are in profiles.processing.steps: ``route`` (route rules), ``map_fields`` (mappings of
the live schema), ``identify`` (profiles.processing.identity), ``merge`` (field states folded
with each field's merge operator, profiles and profile events written); then whatever the apps
downstream add (their steps read ``batch.changed_profiles`` and ``batch.merged``). The runner
imports no step: it loads them by name, and ``profiles`` never imports the downstream ones.

Order and concurrency
---------------------
Any number of workers (threads or processes, each with its own connection) may run
``process_batch`` at once, with the same outcome as one worker: within an account, batches
are applied in the order they were claimed, and each batch holds the account's oldest pending
events, so events are applied in the order they were received (their raw ids; events of one
request keep the request's order). Across accounts nothing is shared, so accounts proceed in
parallel. One batch is one transaction:

1. Claim, under a short per-account *claim lock* (a session advisory lock): delete the
   account's oldest pending rows (``DELETE … WHERE raw_event_id IN (SELECT … ORDER BY
   raw_event_id LIMIT n FOR UPDATE SKIP LOCKED) RETURNING``), skipping rows other in-flight
   batches hold; note the *tickets* of the account's batches still in flight (transaction
   advisory locks, visible in ``pg_locks``); take the next ticket; release the claim lock.
2. Outside any account-wide lock: load the raw events, route and map them (steps marked
   ``unordered``): the CPU work runs in parallel across workers. Then the ``prepare`` reads
   of the ordered steps (a function a step may carry as ``step.prepare``): ``identify`` reads
   the identifiers, profiles and states it will need, without locks.
3. Wait for the turn: take each earlier ticket's lock in shared mode, which returns once the
   batch holding it has committed or rolled back. Then identify, merge and the downstream
   steps run, and the transaction commits, which deletes the claimed queue rows, writes the
   profiles and releases the ticket for the next batch. A step that prepared checks first what
   changed since: ``identify`` locks the profiles it read and reads again those whose row
   version moved, and looks up again the identifiers nobody owned.

A crash or an error anywhere rolls the whole batch back, and its events return to the queue
(they will then be applied after batches claimed meanwhile: the one case where receive order
can bend, and only for a batch that failed as a whole). Per-event problems do not fail the
batch: an expression error sends that event to the failed events (stage ``process``); a value
that does not fit its field, or an identifier value that cannot be one, skips that value with
a warning (``EventWarning``) and the rest of the event applies.

Advisory lock keys (bigint form): ``(2**29 | account) << 32`` is an account's claim lock;
``(2**30 | account) << 32 | ticket`` a batch's ticket.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import DatabaseError, InterfaceError, OperationalError, connection, transaction
from django.utils import timezone
from django.utils.module_loading import import_string

from cdp_site.models import Account
from profiles.collection.messages import MESSAGE_ID_MAX
from profiles.models import EventWarning, FailedEvent, PendingEvent, ProcessingStat
from profiles.processing.batch import Batch, PipelineEvent, RetryBatch, Step
from profiles.processing.identity import db_cursor
from profiles.schema.compiled import event_view, live_schema

if TYPE_CHECKING:
    from collections.abc import Callable

log = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_STEPS",
    "STEP_SECONDS",
    "BatchFailed",
    "BatchResult",
    "ProcessingStatus",
    "pending_accounts",
    "pipeline_steps",
    "process_batch",
    "process_pending",
    "processing_status",
    "set_aside",
]

DEFAULT_BATCH = 1000
MAX_RETRIES = 5  # batches retried in one process_pending call before giving up
MAX_SET_ASIDE_STREAK = 3  # events set aside in a row, nothing succeeding, before raising
DEFAULT_STEPS = [
    "profiles.processing.steps.route",
    "profiles.processing.steps.map_fields",
    "profiles.processing.steps.identify",
    "profiles.processing.steps.merge",
]
_CLAIM_BIT = 1 << 29
_TICKET_BIT = 1 << 30
_LOW = (1 << 32) - 1


class BatchFailed(RuntimeError):
    """A batch rolled back on an unexpected error (its events are back in the queue);
    ``raw_event_ids`` says which events it held, so that one event that always fails can be
    found and set aside (``process_pending``)."""

    def __init__(self, account_id: int, raw_event_ids: list[int], error: BaseException) -> None:
        super().__init__(f"account {account_id}: a batch of {len(raw_event_ids)} events failed: "
                         f"{type(error).__name__}: {error}")
        self.account_id = account_id
        self.raw_event_ids = raw_event_ids
        self.error = error


@dataclass
class BatchResult:
    account_id: int
    events: int
    failed: int
    warnings: int
    profiles_changed: int
    seconds: float
    waited: float


@cache
def _load_steps(names: tuple[str, ...]) -> list[Step]:
    return [import_string(name) for name in names]


def pipeline_steps() -> list[Step]:
    return _load_steps(tuple(getattr(settings, "STRATA_PIPELINE_STEPS", DEFAULT_STEPS)))


# --------------------------------------------------------------------------- claiming


_CLAIM = """
DELETE FROM profiles_pendingevent WHERE raw_event_id IN (
    SELECT raw_event_id FROM profiles_pendingevent WHERE account_id = %(account)s
    ORDER BY raw_event_id LIMIT %(limit)s FOR UPDATE SKIP LOCKED)
RETURNING raw_event_id, received_at
"""
_IN_FLIGHT = """
SELECT objid::bigint FROM pg_locks
WHERE locktype = 'advisory' AND objsubid = 1 AND classid = %(high)s::oid AND granted
    AND mode = 'ExclusiveLock' AND pid <> pg_backend_pid()
    AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
"""
_LOAD_RAW = """
SELECT id, stream, type, event, message_id, anonymous_id, user_id, event_at, received_at,
    message::text
FROM profiles_rawevent
WHERE account_id = %(account)s AND received_at >= %(lo)s AND received_at <= %(hi)s
    AND id = ANY(%(ids)s::bigint[])
"""
_PENDING_ACCOUNTS = """
WITH RECURSIVE a(account_id) AS (
    (SELECT account_id FROM profiles_pendingevent ORDER BY account_id LIMIT 1)
    UNION ALL
    SELECT (SELECT p.account_id FROM profiles_pendingevent p WHERE p.account_id > a.account_id
            ORDER BY p.account_id LIMIT 1)
    FROM a WHERE a.account_id IS NOT NULL
)
SELECT account_id FROM a WHERE account_id IS NOT NULL LIMIT 10000
"""


def _key(high: int, low: int = 0) -> int:
    return (high << 32) | (low & _LOW)


def pending_accounts() -> list[int]:
    """Accounts with events waiting (an index skip scan, not a table scan)."""
    with connection.cursor() as cursor:
        cursor.execute(_PENDING_ACCOUNTS)
        return [row[0] for row in cursor.fetchall()]


def claim_lock_key(account_id: int) -> int:
    """The advisory lock under which an account's batches are claimed."""
    return _key(_CLAIM_BIT | account_id)


def in_flight_tickets(cursor: Any, account_id: int) -> list[int]:
    """Lock keys of the account's batches in flight (claimed, not yet committed) in other
    sessions."""
    high = _TICKET_BIT | account_id
    cursor.execute(_IN_FLIGHT, {"high": high})
    return [_key(high, row[0]) for row in cursor.fetchall()]


def _claim(cursor: Any, account_id: int, limit: int) -> tuple[list[tuple[int, datetime]],
                                                              list[int]]:
    """Under the account's claim lock: the batch's queue rows and the tickets to wait for.
    Takes this batch's ticket (held until the transaction ends)."""
    claim_key = claim_lock_key(account_id)
    # JIT off for the batch's transaction: its statements are short index probes and bulk
    # writes, and on statistics that overestimate (a table never analysed, or bloated with
    # autovacuum off) PostgreSQL compiled them with JIT first, 50 to 100 ms a statement.
    cursor.execute("SELECT pg_advisory_lock(%s), set_config('jit', 'off', true)", [claim_key])
    # Should a statement below fail, the transaction is aborted and cannot unlock:
    # process_batch unlocks after the rollback.
    cursor.execute(_CLAIM, {"account": account_id, "limit": limit})
    rows = cursor.fetchall()
    earlier: list[int] = []
    if rows:
        earlier = in_flight_tickets(cursor, account_id)
        ticket = (max(k & _LOW for k in earlier) + 1) & _LOW if earlier else 0
        cursor.execute("SELECT pg_advisory_xact_lock(%s)",
                       [_key(_TICKET_BIT | account_id, ticket)])
    cursor.execute("SELECT pg_advisory_unlock(%s)", [claim_key])
    return rows, earlier


def _load_events(cursor: Any, account_id: int, claimed: list[tuple[int, datetime]]
                 ) -> list[PipelineEvent]:
    ids = [row[0] for row in claimed]
    times = [row[1] for row in claimed]
    cursor.execute(_LOAD_RAW, {"account": account_id, "lo": min(times), "hi": max(times),
                               "ids": ids})
    events = []
    for (raw_id, stream, mtype, name, message_id, anonymous_id, user_id, at, received,
         text) in cursor.fetchall():
        message = json.loads(text)
        if not isinstance(message, dict):
            message = {"value": message}
        events.append(PipelineEvent(
            raw_event_id=raw_id, stream=stream, source_stream=stream, type=mtype, event=name,
            message_id=message_id, at=at, received_at=received,
            message=event_view(message, anonymous_id, user_id)))
    events.sort(key=lambda e: e.raw_event_id)
    return events


def process_batch(account_id: int, *, limit: int = DEFAULT_BATCH,
                  steps: list[Step] | None = None) -> BatchResult | None:
    """Claim and process one batch of the account's oldest pending events (None when there is
    none to claim). See the module docstring for how concurrent workers keep receive order."""
    started = time.monotonic()
    steps = pipeline_steps() if steps is None else steps
    claiming = True
    raw_ids: list[int] = []
    try:
        with transaction.atomic():
            with db_cursor() as cursor:
                claimed, earlier = _claim(cursor, account_id, limit)
                claiming = False
                if not claimed:
                    return None
                raw_ids = [row[0] for row in claimed]
                events = _load_events(cursor, account_id, claimed)
            return _process(account_id, events, earlier, steps, started)
    except (RetryBatch, OperationalError, InterfaceError):
        raise  # nothing wrong with the events: the batch simply runs again
    except Exception as exc:
        if raw_ids:
            raise BatchFailed(account_id, raw_ids, exc) from exc
        raise
    finally:
        if claiming:  # the claim failed part-way and was rolled back: release its lock
            with contextlib.suppress(DatabaseError), connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [claim_lock_key(account_id)])


def _process(account_id: int, events: list[PipelineEvent], earlier: list[int],
             steps: list[Step], started: float) -> BatchResult:
    account = Account.objects.filter(pk=account_id).only("max_identifiers_per_profile").first()
    batch = Batch(account_id=account_id, schema=live_schema(account_id), events=events,
                  now=timezone.now(),
                  max_identifiers=account.max_identifiers_per_profile if account else 50)
    waited = 0.0
    in_turn = False
    clock = time.monotonic()
    STEP_SECONDS["(claim and load)"] += clock - started
    for index, step in enumerate(steps):
        if not in_turn and not getattr(step, "unordered", False):
            for later in steps[index:]:  # reads the ordered steps can do before the turn
                prepare = getattr(later, "prepare", None)
                if prepare is not None:
                    prepare(batch)
                    clock = _timed(f"{_step_name(later)}.prepare", clock)
            waited = _wait_for_turn(earlier)
            in_turn = True
            clock = _timed("(wait for the turn)", clock)
        step(batch)
        clock = _timed(_step_name(step), clock)
    if not in_turn:
        waited = _wait_for_turn(earlier)
        clock = _timed("(wait for the turn)", clock)
    failed, warnings = _record_outcomes(batch)
    _count(account_id, batch.now, len(events), failed, time.monotonic() - started)
    _timed("(outcomes)", clock)
    return BatchResult(account_id, len(events), failed, warnings, len(batch.changed_profiles),
                       time.monotonic() - started, waited)


# Wall seconds this process spent per step (and in the parts between steps), for the
# benchmark and ``process_events --timings``; the commit is not included.
STEP_SECONDS: defaultdict[str, float] = defaultdict(float)


def _step_name(step: Step) -> str:
    return f"{step.__module__}.{step.__name__}"


def _timed(name: str, since: float) -> float:
    now = time.monotonic()
    STEP_SECONDS[name] += now - since
    return now


def _wait_for_turn(earlier: list[int]) -> float:
    """Block until every batch of the account claimed before this one has ended."""
    if not earlier:
        return 0.0
    started = time.monotonic()
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(pg_advisory_xact_lock_shared(k)) FROM unnest(%s::bigint[]) k",
                       [earlier])
    return time.monotonic() - started


def _encode(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _record_outcomes(batch: Batch) -> tuple[int, int]:
    failed = [e for e in batch.events if e.failure is not None]
    if failed:
        FailedEvent.objects.bulk_create([
            FailedEvent(account_id=batch.account_id, stream=e.source_stream,
                        received_at=e.received_at, source="process", stage="process",
                        code=e.failure[0], reason=e.failure[1],
                        body=_encode(e.message)[: FailedEvent.BODY_LIMIT],
                        message_id=e.message_id[:MESSAGE_ID_MAX], raw_event_id=e.raw_event_id)
            for e in failed if e.failure is not None
        ])
    warnings = [EventWarning(account_id=batch.account_id, raw_event_id=e.raw_event_id,
                             stream=e.stream, code=code, field=name[:100], message=message,
                             created_at=batch.now)
                for e in batch.events for code, name, message in e.warnings]
    if warnings:
        EventWarning.objects.bulk_create(warnings)
    return len(failed), len(warnings)


_COUNT = """
INSERT INTO profiles_processingstat (account_id, minute, events, failed, seconds)
VALUES (%s, %s, %s, %s, %s)
ON CONFLICT (account_id, minute) DO UPDATE SET events = profiles_processingstat.events
    + EXCLUDED.events, failed = profiles_processingstat.failed + EXCLUDED.failed,
    seconds = profiles_processingstat.seconds + EXCLUDED.seconds
"""


def _count(account_id: int, now: datetime, events: int, failed: int, seconds: float) -> None:
    minute = now.astimezone(UTC).replace(second=0, microsecond=0)
    with connection.cursor() as cursor:
        cursor.execute(_COUNT, [account_id, minute, events, failed, seconds])


def process_pending(*, limit: int = DEFAULT_BATCH, max_seconds: float | None = None,
                    max_batches: int | None = None, account_id: int | None = None,
                    should_stop: Callable[[], bool] | None = None) -> int:
    """Process batches until no account has a claimable event (or a limit is reached); the
    number of events processed. Accounts take turns, a batch each.

    A batch that fails on an unexpected error is tried again in smaller batches until the one
    event that fails is found; that event is set aside as a failed event (``processing_error``,
    retryable with ``rebuild.retry_failed_events``) and the rest goes on, so one bad event
    cannot stall its account. Should events keep failing one after another with nothing
    succeeding in between (a fault that is not the events'), the error is raised instead."""
    started = time.monotonic()
    total = batches = retries = 0
    narrowed: dict[int, int] = {}  # account -> batch size while looking for a failing event
    streak = _SET_ASIDE_STREAK
    while True:
        accounts = [account_id] if account_id is not None else pending_accounts()
        progress = False
        for account in accounts:
            if should_stop is not None and should_stop():
                return total
            size = narrowed.get(account, limit)
            try:
                result = process_batch(account, limit=size)
            except RetryBatch as exc:
                retries += 1
                if retries > MAX_RETRIES:
                    raise
                log.info("account %s: batch retried: %s", account, exc)
                progress = True
                continue
            except BatchFailed as exc:
                progress = True
                if len(exc.raw_event_ids) > 1:
                    narrowed[account] = max(1, len(exc.raw_event_ids) // 8)
                    log.warning("%s; trying again in batches of %d", exc, narrowed[account])
                    continue
                streak[account] = streak.get(account, 0) + 1
                if streak[account] > MAX_SET_ASIDE_STREAK:
                    raise
                set_aside(account, exc.raw_event_ids[0], exc.error)
                narrowed.pop(account, None)
                continue
            if result is None:
                continue
            streak.pop(account, None)
            if account in narrowed:  # past the failing event: back to full batches gradually
                narrowed[account] = min(limit, narrowed[account] * 8)
            progress = True
            total += result.events
            batches += 1
            if max_batches is not None and batches >= max_batches:
                return total
            if max_seconds is not None and time.monotonic() - started > max_seconds:
                return total
        if not progress:
            return total


# account -> events this process set aside since a batch of that account last succeeded
_SET_ASIDE_STREAK: dict[int, int] = {}

_SET_ASIDE = """
DELETE FROM profiles_pendingevent p
WHERE p.raw_event_id = %(id)s AND p.account_id = %(account)s
RETURNING p.received_at
"""


def set_aside(account_id: int, raw_event_id: int, error: BaseException) -> bool:
    """Take one event out of the queue as a failed event (stage ``process``) with the error;
    False when it was no longer pending (another worker dealt with it)."""
    with transaction.atomic(), db_cursor() as cursor:
        cursor.execute(_SET_ASIDE, {"id": raw_event_id, "account": account_id})
        row = cursor.fetchone()
        if row is None:
            return False
        cursor.execute("SELECT stream, message_id, message::text FROM profiles_rawevent "
                       "WHERE account_id = %s AND received_at = %s AND id = %s",
                       [account_id, row[0], raw_event_id])
        raw = cursor.fetchone() or ("", "", "")
        log.error("account %s: event %s set aside: %r", account_id, raw_event_id, error)
        FailedEvent.objects.create(
            account_id=account_id, stream=raw[0], received_at=row[0], source="process",
            stage="process", code="processing_error",
            reason=f"{type(error).__name__}: {error}"[:2000],
            body=(raw[2] or "")[: FailedEvent.BODY_LIMIT],
            message_id=(raw[1] or "")[:MESSAGE_ID_MAX], raw_event_id=raw_event_id)
    return True


# --------------------------------------------------------------------------- status


@dataclass
class ProcessingStatus:
    """Lag and throughput for the dashboard."""

    pending: int
    oldest_pending_at: datetime | None
    lag_seconds: float
    events_last_minute: int
    events_per_minute: float  # over the last ``window_minutes``
    failed_last_hour: int
    window_minutes: int

    def as_dict(self) -> dict[str, Any]:
        return {"pending": self.pending, "oldest_pending_at": self.oldest_pending_at,
                "lag_seconds": round(self.lag_seconds, 1),
                "events_last_minute": self.events_last_minute,
                "events_per_minute": round(self.events_per_minute, 1),
                "failed_last_hour": self.failed_last_hour,
                "window_minutes": self.window_minutes}


def processing_status(account: Account, *, now: datetime | None = None,
                      window_minutes: int = 5) -> ProcessingStatus:
    """How far behind processing is (the oldest pending event's age) and how fast it goes
    (events per minute, from ProcessingStat)."""
    now = now or timezone.now()
    queue = PendingEvent.objects.for_account(account)
    oldest = queue.order_by("raw_event_id").values_list("received_at", flat=True).first()
    pending = queue.count() if oldest is not None else 0
    minute = now.astimezone(UTC).replace(second=0, microsecond=0)
    stats = list(ProcessingStat.objects.for_account(account)
                 .filter(minute__gte=minute - timedelta(minutes=60))
                 .values_list("minute", "events", "failed"))
    window_start = minute - timedelta(minutes=window_minutes)
    recent = sum(e for m, e, _f in stats if m >= window_start)
    return ProcessingStatus(
        pending=pending, oldest_pending_at=oldest,
        lag_seconds=max(0.0, (now - oldest).total_seconds()) if oldest else 0.0,
        events_last_minute=sum(e for m, e, _f in stats if m >= minute - timedelta(minutes=1)),
        events_per_minute=recent / window_minutes,
        failed_last_hour=sum(f for _m, _e, f in stats),
        window_minutes=window_minutes,
    )
