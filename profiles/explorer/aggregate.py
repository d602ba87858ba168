"""The stream aggregator: what the stream explorer and account usage read, kept up to date
incrementally from the raw store, never by scanning it per page view.

It reads raw events after a watermark (``AggregationCursor``, by id) in chunks and folds each
chunk into ``StreamHourlyCount`` (events per account, stream and hour), ``RawKey`` (one row per
flattened key path of a stream's messages) and ``ViolationCount`` (tracking plan warnings);
blocked events (failed events with code ``tracking_plan``) are counted from their own cursor.

Events of an account deleted since they arrived are passed over (nothing to count them for).

Exactly once. Each chunk is one transaction: the cursor row is locked (``SELECT ... FOR
UPDATE``), the chunk's counts are upserted, and the cursor moves past the chunk, all committed
together. A second aggregator running at the same time waits on the cursor row and then reads
the moved cursor, so nothing is counted twice; a crash rolls the whole chunk back.

Rows committed late. Ids come from a sequence when a row is inserted, but a row becomes
visible when its transaction commits, and commits do not come in id order: the Segment path may
hold id 100 uncommitted while 101 is visible, and a bulk import holds its ids for as long as the
import runs (one transaction). Moving the cursor past 101 would skip 100 forever. So a chunk only
reads up to a *horizon* below which every id is visible or never will be:

1. A fence: the sequence's last value V, read first, then the transactions in progress that may
   hold ids (other client sessions of this database in a transaction that has written, or is
   running a statement; aggregators, which insert no events, are told apart by their
   application name). Every id up to V was handed out before the fence, to a transaction that
   had finished by then or is one of those. Once all of them have finished, V is a horizon.
   Fences resolve within milliseconds under live traffic; one waiting on a long transaction
   (a bulk import) stays pending while the aggregator works up to older horizons, so it lags
   behind the import rather than skipping it.
2. As a second line for sessions whose state the database role cannot see (pg_stat_activity
   hides other roles' transactions without pg_read_all_stats), a chunk also stops at the first
   row received less than ``SETTLE_SECONDS`` ago: the live paths insert and commit within a
   moment of the ``received_at`` they stamp.

Performance. The work per event is in Python (parse, flatten, fold), arranged so the per-value
work runs in C where it can (``Counter``, ``dict.fromkeys``, ``heapq``): values are collected per
key path first, then each column is summarised once per chunk. Writes are a handful of
``INSERT ... ON CONFLICT DO UPDATE`` statements over arrays per chunk, never one per event.
``bench/aggregate.py`` measures it (docs/benchmarks.md, "Aggregation").
"""

from __future__ import annotations

import hashlib
import heapq
import json
import logging
import re
import time
from collections import Counter
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from itertools import islice
from multiprocessing import get_context
from operator import itemgetter
from typing import TYPE_CHECKING, Any

from django.db import connection, transaction

from profiles.schema.key_usage import recompute_live_key_usage

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

log = logging.getLogger(__name__)

SETTLE_SECONDS = 5.0
CHUNK_SIZE = 10_000
SKETCH_SIZE = 256  # k of the KMV sketch: relative standard error about 1/sqrt(k - 2), 6 %
SAMPLE_COUNT = 10
SAMPLE_CHARS = 200
KEY_MAX_LENGTH = 500
MAX_KEYS_PER_STREAM = 2_000  # a sender inventing keys (ids as keys) must not grow RawKey forever

RAW_CURSOR = "raw_events"
FAILED_CURSOR = "failed_events"

TYPES = ("string", "int", "number", "bool", "date", "array", "object")  # ties: earlier wins
NULL = "null"  # counted in type_counts, never predicted, not a value for samples or sketch


# ---------------------------------------------------------------------------------------------
# The KMV sketch: the k smallest 64-bit hashes of the distinct values seen.


def value_hash(text: str) -> int:
    """A 64-bit hash of a value's text, stable across processes and releases (blake2b), as a
    signed integer to fit PostgreSQL's bigint."""
    digest = _blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return _from_bytes(digest, "little", signed=True)


_blake2b = hashlib.blake2b
_from_bytes = int.from_bytes


def merge_sketch(first: Iterable[int], second: Iterable[int], k: int = SKETCH_SIZE) -> list[int]:
    """The sketch of the union of two value sets: exact (the k smallest of both)."""
    return heapq.nsmallest(k, {*first, *second})


def estimate_distinct(sketch: Sequence[int], k: int = SKETCH_SIZE) -> int:
    """Approximate number of distinct values from a KMV sketch. Below k hashes the sketch holds
    every distinct value and the count is exact; at k it is (k - 1) / U(k), where U(k) is the
    k-th smallest hash mapped to [0, 1)."""
    if len(sketch) < k:
        return len(sketch)
    largest = max(sketch)
    fraction = (largest + 2**63 + 1) / 2**64
    return round((k - 1) / fraction)


# ---------------------------------------------------------------------------------------------
# Types of values.

_DATE = re.compile(
    r"\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?"
    r"(?:Z|z|[+-]\d{2}(?::?\d{2})?)?)?"
)


def is_date(text: str) -> bool:
    """ISO 8601 dates and date-times (what Segment and most trackers send) count as dates."""
    if text[4:5] != "-" or not 10 <= len(text) <= 40 or not _DATE.fullmatch(text):
        return False
    try:
        date.fromisoformat(text[:10])
    except ValueError:
        return False
    return True


def predict_type(type_counts: dict[str, int]) -> str:
    """The type most values had. Integers count as numbers once any value was fractional."""
    counts = {name: n for name, n in type_counts.items() if name != NULL and n > 0}
    if "number" in counts and "int" in counts:
        counts["number"] += counts.pop("int")
    if not counts:
        return "string"
    return max(TYPES, key=lambda name: (counts.get(name, 0), -TYPES.index(name)))


class _Array(str):
    """An array value, kept as its JSON text (hashable, comparable, displayable)."""

    __slots__ = ()


class _Object(str):
    """An empty object (non-empty ones are flattened into their keys)."""

    __slots__ = ()


_EMPTY_OBJECT = _Object("{}")


def _classify(value: Any) -> tuple[str, str | None]:
    """(type name, text to hash) of one value; None is not a value."""
    kind = type(value)
    if kind is str:
        return ("date" if is_date(value) else "string"), value
    if kind is bool:
        return "bool", "true" if value else "false"
    if kind is int:
        return "int", str(value)
    if kind is float:
        return "number", repr(value)
    if kind is _Array:
        return "array", value
    if kind is _Object:
        return "object", value
    if value is None:
        return NULL, None
    return "string", str(value)


def _sample(value: Any) -> Any:
    if isinstance(value, str):
        return str(value[:SAMPLE_CHARS])
    return value


# ---------------------------------------------------------------------------------------------
# Summaries of a chunk: plain data, mergeable (with each other and with what is stored).

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_HOUR_US = 3_600_000_000


def from_micros(micros: int) -> datetime:
    return _EPOCH + timedelta(microseconds=micros)


@dataclass
class KeySummary:
    """What a chunk (or everything so far) says about one key of one stream."""

    times_seen: int
    type_counts: dict[str, int]
    first_seen: datetime
    last_seen: datetime
    sketch: list[int]
    samples: list[Any]  # most recent first, distinct

    def merge_older(self, older: KeySummary) -> KeySummary:
        """Fold an older summary (an earlier slice, or the stored row) into this newer one."""
        counts = dict(older.type_counts)
        for name, n in self.type_counts.items():
            counts[name] = counts.get(name, 0) + n
        return KeySummary(
            times_seen=self.times_seen + older.times_seen,
            type_counts=counts,
            first_seen=min(self.first_seen, older.first_seen),
            last_seen=max(self.last_seen, older.last_seen),
            sketch=merge_sketch(self.sketch, older.sketch),
            samples=_merge_samples(self.samples, older.samples),
        )

    @property
    def predicted_type(self) -> str:
        return predict_type(self.type_counts)


def _merge_samples(newer: list[Any], older: list[Any]) -> list[Any]:
    seen: set[tuple[type, Any]] = set()
    merged: list[Any] = []
    for value in [*newer, *older]:
        marker = (type(value), json.dumps(value) if isinstance(value, list | dict) else value)
        if marker in seen:
            continue
        seen.add(marker)
        merged.append(value)
        if len(merged) == SAMPLE_COUNT:
            break
    return merged


StreamKey = tuple[int, str]  # (account id, stream)
HourKey = tuple[int, str, datetime]  # (account id, stream, hour)
KeyIdent = tuple[int, str, str]  # (account id, stream, key path)
DayKey = tuple[int, str, str, date]  # (account id, stream, event name, day)


@dataclass
class ChunkSummary:
    events: int = 0
    hourly: dict[HourKey, list[Any]] = field(default_factory=dict)  # [events, last message at]
    keys: dict[KeyIdent, KeySummary] = field(default_factory=dict)
    violations: dict[DayKey, int] = field(default_factory=dict)

    def merge_older(self, older: ChunkSummary) -> ChunkSummary:
        """This (newer) summary with an older one folded in."""
        hourly = {key: list(slot) for key, slot in older.hourly.items()}
        for key, (events, last) in self.hourly.items():
            slot = hourly.get(key)
            hourly[key] = [events, last] if slot is None else [slot[0] + events,
                                                              max(slot[1], last)]
        keys = dict(older.keys)
        for ident, summary in self.keys.items():
            previous = keys.get(ident)
            keys[ident] = summary if previous is None else summary.merge_older(previous)
        violations = dict(older.violations)
        for violation, n in self.violations.items():
            violations[violation] = violations.get(violation, 0) + n
        return ChunkSummary(self.events + older.events, hourly, keys, violations)


def flatten_into(
    message: dict[str, Any],
    prefix: str,
    columns: dict[str, list[Any]],
    first: dict[str, int],
    last: dict[str, int],
    at: int,
) -> None:
    """Append each leaf value of a message to its key path's column: nested objects join with
    dots (``context.page.url``), arrays are one value under ``key[]`` (their JSON text).
    ``first``/``last`` keep the time (``at``) a key path was first and last seen."""
    for key, value in message.items():
        kind = type(value)
        if kind is dict:
            if value:
                flatten_into(value, f"{prefix}{key}.", columns, first, last, at)
                continue
            value = _EMPTY_OBJECT
        elif kind is list:
            key = f"{key}[]"
            value = _Array(json.dumps(value, separators=(",", ":"), ensure_ascii=False))
        path = prefix + key
        column = columns.get(path)
        if column is None:
            columns[path] = [value]
            first[path] = at
        else:
            column.append(value)
        last[path] = at


def flatten(message: dict[str, Any]) -> dict[str, Any]:
    """One message's key paths and values (what the explorer calls its raw keys)."""
    columns: dict[str, list[Any]] = {}
    flatten_into(message, "", columns, {}, {}, 0)
    return {path: values[-1] for path, values in columns.items()}


def summarize_column(values: list[Any], first_seen: datetime, last_seen: datetime) -> KeySummary:
    """Fold one key's values (in arrival order) into a summary: the work per value is in C
    (counting, de-duplicating); hashing and typing run once per distinct value."""
    type_counts: dict[str, int] = {}
    hashes: set[int] = set()
    add = hashes.add
    for value, n in Counter(values).items():
        if type(value) is str:  # the common case, inlined (value_hash, is_date)
            name = "date" if value[4:5] == "-" and is_date(value) else "string"
            digest = _blake2b(value.encode("utf-8", "surrogatepass"), digest_size=8).digest()
            add(_from_bytes(digest, "little", signed=True))
        else:
            name, text = _classify(value)
            if text is not None:
                add(value_hash(text))
        type_counts[name] = type_counts.get(name, 0) + n
    recent = (value for value in dict.fromkeys(reversed(values)) if value is not None)
    return KeySummary(
        times_seen=len(values),
        type_counts=type_counts,
        first_seen=first_seen,
        last_seen=last_seen,
        sketch=heapq.nsmallest(SKETCH_SIZE, hashes),
        samples=[_sample(value) for value in islice(recent, SAMPLE_COUNT)],
    )


def _violated(warnings: str | None) -> bool:
    if not warnings or "tracking_plan" not in warnings:
        return False
    try:
        entries = json.loads(warnings)
    except ValueError:
        return False
    if not isinstance(entries, list):
        return False
    return any(isinstance(e, dict) and e.get("code") == "tracking_plan" for e in entries)


def summarize_events(rows: Iterable[Sequence[Any]]) -> ChunkSummary:
    """Summarise raw event rows ``(id, account_id, stream, received_at in microseconds since
    the epoch, event, type, message text, warnings text)`` given in id order. Pure: no
    database, so it can run in worker processes."""
    summary = ChunkSummary()
    hourly: dict[tuple[int, str, int], list[int]] = {}
    states: dict[StreamKey, tuple[dict, dict, dict]] = {}
    loads = json.loads
    for _id, account_id, stream, micros, event, kind, message, warnings in rows:
        hour_key = (account_id, stream, micros - micros % _HOUR_US)
        slot = hourly.get(hour_key)
        if slot is None:
            hourly[hour_key] = [1, micros]
        else:
            slot[0] += 1
            if micros > slot[1]:
                slot[1] = micros
        if warnings is not None and _violated(warnings):
            day_key = (account_id, stream, (event or kind or "")[:200], from_micros(micros).date())
            summary.violations[day_key] = summary.violations.get(day_key, 0) + 1
        state = states.get((account_id, stream))
        if state is None:
            state = states[(account_id, stream)] = ({}, {}, {})
        try:
            body = loads(message)
        except ValueError:
            continue
        if type(body) is dict:
            flatten_into(body, "", state[0], state[1], state[2], micros)
    summary.events = sum(slot[0] for slot in hourly.values())
    summary.hourly = {
        (account_id, stream, from_micros(hour)): [n, from_micros(last)]
        for (account_id, stream, hour), (n, last) in hourly.items()
    }
    for (account_id, stream), (columns, first, last) in states.items():
        for path, values in columns.items():
            if len(path) > KEY_MAX_LENGTH:
                continue
            summary.keys[(account_id, stream, path)] = summarize_column(
                values, from_micros(first[path]), from_micros(last[path])
            )
    return summary


# Summarising in worker processes: the work is CPU-bound Python, so a second core helps.

_pool: ProcessPoolExecutor | None = None
_pool_size = 0


def _worker_pool(workers: int) -> ProcessPoolExecutor:
    global _pool, _pool_size
    if _pool is None or _pool_size != workers:
        if _pool is not None:
            _pool.shutdown(cancel_futures=True)
        # spawn: a fresh interpreter that never shares this process's database sockets
        _pool = ProcessPoolExecutor(workers, mp_context=get_context("spawn"))
        _pool_size = workers
    return _pool


def shutdown_workers() -> None:
    """Stop the worker processes and the read-ahead thread (closing its connection)."""
    global _pool, _pool_size, _reader
    if _pool is not None:
        _pool.shutdown(cancel_futures=True)
    _pool, _pool_size = None, 0
    if _reader is not None:
        _reader.submit(lambda: connection.close()).result()
        _reader.shutdown()
        _reader = None


def summarize_in_parallel(rows: Sequence[Sequence[Any]], workers: int) -> ChunkSummary:
    """``summarize_events`` over contiguous slices in worker processes, merged in order (the
    result equals summarising the rows at once)."""
    if workers <= 1 or len(rows) < 2 * workers:
        return summarize_events(rows)
    size = -(-len(rows) // workers)
    slices = [rows[start:start + size] for start in range(0, len(rows), size)]
    summaries = list(_worker_pool(workers).map(summarize_events, slices))
    merged = summaries[0]
    for newer in summaries[1:]:
        merged = newer.merge_older(merged)
    return merged


# ---------------------------------------------------------------------------------------------
# Reading the raw store and writing the summaries.


@dataclass
class AggregateResult:
    events: int = 0
    failed_events: int = 0
    chunks: int = 0
    seconds: float = 0.0

    @property
    def idle(self) -> bool:
        return self.events == 0 and self.failed_events == 0


def _locked_cursor(cursor: Any, name: str) -> int:
    """The cursor's position, with its row locked until the transaction ends."""
    query = "SELECT last_id FROM profiles_aggregationcursor WHERE name = %s FOR UPDATE"
    cursor.execute(query, [name])
    row = cursor.fetchone()
    if row is None:
        cursor.execute(
            "INSERT INTO profiles_aggregationcursor (name, last_id, updated_at) "
            "VALUES (%s, 0, now()) ON CONFLICT (name) DO NOTHING",
            [name],
        )
        cursor.execute(query, [name])
        row = cursor.fetchone()
    return int(row[0])


def _move_cursor(cursor: Any, name: str, last_id: int) -> None:
    cursor.execute(
        "UPDATE profiles_aggregationcursor SET last_id = %s, updated_at = now() WHERE name = %s",
        [last_id, name],
    )


APPLICATION_NAME = "strata-aggregator"
FENCE_WAIT_SECONDS = 0.5
MAX_PENDING_FENCES = 100

_HOLDERS = """
SELECT pid, xact_start FROM pg_stat_activity
WHERE datname = current_database() AND pid <> pg_backend_pid()
  AND backend_type = 'client backend' AND xact_start IS NOT NULL
  AND (backend_xid IS NOT NULL OR state = 'active')
  AND application_name IS DISTINCT FROM %s
"""


@dataclass
class _Fence:
    last_value: int
    holders: frozenset[tuple[int, datetime]]


# Per table: the highest resolved horizon and the fences still waiting on transactions. Kept
# in process memory: a new process starts from the cursor and its first fence.
_horizons: dict[str, int] = {}
_pending: dict[str, list[_Fence]] = {}


def forget_fences() -> None:
    _horizons.clear()
    _pending.clear()


def _holders(cursor: Any) -> set[tuple[int, datetime]]:
    # pg_stat_activity is read once per transaction unless the snapshot is cleared
    cursor.execute("SELECT pg_stat_clear_snapshot()")
    cursor.execute(_HOLDERS, [APPLICATION_NAME])
    return {(pid, started) for pid, started in cursor.fetchall()}


def visible_horizon(cursor: Any, table: str, wait_seconds: float = FENCE_WAIT_SECONDS) -> int:
    """The highest id below which every row of ``table`` is visible or never will be (see the
    module's docstring). Waits up to ``wait_seconds`` for the transactions of a new fence."""
    cursor.execute(
        "SELECT pg_sequence_last_value(pg_get_serial_sequence(%s, 'id')::regclass)", [table]
    )
    last_value = cursor.fetchone()[0] or 0
    pending = _pending.setdefault(table, [])
    pending.append(_Fence(last_value, frozenset(_holders(cursor))))
    del pending[:-MAX_PENDING_FENCES]
    deadline = time.monotonic() + wait_seconds
    while True:
        running = _holders(cursor) if any(f.holders for f in pending) else set()
        for fence in [f for f in pending if not f.holders & running]:
            _horizons[table] = max(_horizons.get(table, 0), fence.last_value)
            pending.remove(fence)
        if not pending or time.monotonic() >= deadline:
            return _horizons.get(table, 0)
        time.sleep(0.01)


def _range_query(table: str, columns: str) -> str:
    return (  # the table and columns are constants of this module
        f"SELECT id, {columns}, "  # noqa: S608
        "received_at <= statement_timestamp() - make_interval(secs => %s) "
        f"FROM {table} WHERE id > %s AND id <= %s"
    )


def _read_range(cursor: Any, table: str, columns: str, after: int, end: int,
                settle_seconds: float) -> list[tuple[Any, ...]]:
    """Rows with ids in (after, end], in id order (index scans; the sort is done here, not on
    wide rows in the database)."""
    cursor.execute(_range_query(table, columns), [settle_seconds, after, end])
    rows = cursor.fetchall()
    rows.sort(key=itemgetter(0))
    return rows


def _until_unsettled(rows: list[tuple[Any, ...]]) -> tuple[list[tuple[Any, ...]], bool]:
    """The rows before the first one still inside the settle window; True when all were."""
    for index, row in enumerate(rows):
        if not row[-1]:
            return rows[:index], False
    return rows, True


@dataclass
class _Prefetch:
    """The next chunk's rows, read by a helper thread while this chunk is summarised."""

    table: str
    after: int
    end: int
    rows: Future[list[tuple[Any, ...]]]


_reader: ThreadPoolExecutor | None = None


def _read_ahead(table: str, columns: str, after: int, end: int,
                settle_seconds: float) -> list[tuple[Any, ...]]:
    connection.close_if_unusable_or_obsolete()  # the helper thread's own connection
    with connection.cursor() as cursor:
        cursor.execute("SET application_name = %s", [APPLICATION_NAME])
        return _read_range(cursor, table, columns, after, end, settle_seconds)


def _prefetch(table: str, columns: str, after: int, end: int, settle_seconds: float
              ) -> _Prefetch:
    global _reader
    if _reader is None:
        _reader = ThreadPoolExecutor(1, thread_name_prefix="aggregate-reader")
    future = _reader.submit(_read_ahead, table, columns, after, end, settle_seconds)
    return _Prefetch(table, after, end, future)


def _fetch_settled(
    cursor: Any, table: str, columns: str, last_id: int, chunk_size: int, settle_seconds: float,
    prefetched: _Prefetch | None = None,
) -> tuple[list[tuple[Any, ...]], int, bool]:
    """The next rows after ``last_id`` in id order, up to the visible horizon and the first row
    still inside the settle window; with the horizon, and whether no row was still settling.
    When the id range is empty, it starts again at the next id that exists (ids have gaps).
    Rows read ahead for this very range are used: every id up to the horizon they were read
    under is committed, so a later read would find the same rows."""
    cursor.execute("SET LOCAL application_name = %s", [APPLICATION_NAME])
    horizon = visible_horizon(cursor, table)
    if horizon <= last_id:
        return [], horizon, False
    if (prefetched is not None and prefetched.table == table and prefetched.after == last_id
            and prefetched.end <= horizon):
        rows = prefetched.rows.result()
        if rows:
            settled, complete = _until_unsettled(rows)
            return settled, horizon, complete
    rows = _read_range(cursor, table, columns, last_id, min(last_id + chunk_size, horizon),
                       settle_seconds)
    if not rows:
        first_query = f"SELECT min(id) FROM {table} WHERE id > %s AND id <= %s"  # noqa: S608
        cursor.execute(first_query, [last_id, horizon])
        first = cursor.fetchone()[0]
        if first is None:
            return [], horizon, False
        rows = _read_range(cursor, table, columns, first - 1,
                           min(first - 1 + chunk_size, horizon), settle_seconds)
    settled, complete = _until_unsettled(rows)
    return settled, horizon, complete


_RAW_COLUMNS = (
    "account_id, stream, (extract(epoch FROM received_at) * 1000000)::bigint, event, type, "
    "message::text, warnings::text"
)


def aggregate_raw_chunk(
    chunk_size: int = CHUNK_SIZE, settle_seconds: float = SETTLE_SECONDS, workers: int = 0,
    *, read_ahead: bool = False, prefetched: _Prefetch | None = None,
) -> tuple[int, _Prefetch | None]:
    """Fold the next chunk of settled raw events into the explorer's tables, in one
    transaction with the cursor. Returns how many events it read (0: nothing to do) and, with
    ``read_ahead``, the next chunk being read meanwhile by a helper thread (pass it back in)."""
    table = "profiles_rawevent"
    with transaction.atomic(), connection.cursor() as cursor:
        last_id = _locked_cursor(cursor, RAW_CURSOR)
        rows, horizon, complete = _fetch_settled(cursor, table, _RAW_COLUMNS, last_id,
                                                 chunk_size, settle_seconds, prefetched)
        if not rows:
            return 0, None
        end = rows[-1][0]
        following = None
        if read_ahead and complete and horizon > end:
            following = _prefetch(table, _RAW_COLUMNS, end, min(end + chunk_size, horizon),
                                  settle_seconds)
        summary = summarize_in_parallel([row[:-1] for row in rows], workers)
        _write_streams(cursor, {(account, stream) for account, stream, _hour in summary.hourly})
        _write_hourly(cursor, summary.hourly)
        _write_keys(cursor, summary.keys)
        _write_violations(cursor, summary.violations, column="violations")
        _move_cursor(cursor, RAW_CURSOR, end)
        return len(rows), following


def _write_streams(cursor: Any, streams: set[StreamKey]) -> None:
    """Streams are created on first use; collect remembers the ones it created in process
    memory, so a stream deleted in the explorer while events still arrive comes back here."""
    accounts, names = zip(*streams, strict=True)
    cursor.execute(
        """
        INSERT INTO profiles_stream (account_id, name, description, created_at)
        SELECT x.a, x.s, '', now() FROM unnest(%s::bigint[], %s::text[]) AS x(a, s)
        JOIN cdp_site_account account ON account.id = x.a
        ON CONFLICT (account_id, name) DO NOTHING
        """,
        [list(accounts), list(names)],
    )


def _write_hourly(cursor: Any, hourly: dict[tuple[int, str, datetime], list[Any]]) -> None:
    if not hourly:
        return
    accounts, streams, hours = zip(*hourly, strict=True)
    counts, lasts = zip(*hourly.values(), strict=True)
    cursor.execute(
        """
        INSERT INTO profiles_streamhourlycount (account_id, stream, hour, events, last_message_at)
        SELECT x.* FROM unnest(%s::bigint[], %s::text[], %s::timestamptz[], %s::bigint[],
                               %s::timestamptz[]) AS x(a, s, h, n, l)
        JOIN cdp_site_account account ON account.id = x.a
        ON CONFLICT (account_id, stream, hour) DO UPDATE
        SET events = profiles_streamhourlycount.events + EXCLUDED.events,
            last_message_at = GREATEST(profiles_streamhourlycount.last_message_at,
                                       EXCLUDED.last_message_at)
        """,
        [list(accounts), list(streams), list(hours), list(counts), list(lasts)],
    )


def _write_violations(
    cursor: Any, counts: dict[tuple[int, str, str, date], int], *, column: str
) -> None:
    if not counts:
        return
    assert column in ("violations", "blocked")
    other = "blocked" if column == "violations" else "violations"
    accounts, streams, events, days = zip(*counts, strict=True)
    cursor.execute(
        f"""
        INSERT INTO profiles_violationcount (account_id, stream, event, day, {column}, {other})
        SELECT a, s, e, d, n, 0
        FROM unnest(%s::bigint[], %s::text[], %s::text[], %s::date[], %s::bigint[])
            AS x(a, s, e, d, n)
        JOIN cdp_site_account account ON account.id = x.a
        ON CONFLICT (account_id, stream, event, day) DO UPDATE
        SET {column} = profiles_violationcount.{column} + EXCLUDED.{column}
        """,  # noqa: S608 (the column is one of two names, checked above)
        [list(accounts), list(streams), list(events), list(days), list(counts.values())],
    )


def _stored_keys(
    cursor: Any, keys: Iterable[tuple[int, str, str]]
) -> dict[tuple[int, str, str], KeySummary]:
    keys = list(keys)
    accounts, streams, paths = zip(*keys, strict=True)
    cursor.execute(
        """
        SELECT k.account_id, k.stream, k.key, k.times_seen, k.type_counts::text, k.first_seen,
               k.last_seen, k.sketch, k.samples::text
        FROM profiles_rawkey k
        JOIN unnest(%s::bigint[], %s::text[], %s::text[]) AS x(a, s, p)
          ON k.account_id = x.a AND k.stream = x.s AND k.key = x.p
        """,
        [list(accounts), list(streams), list(paths)],
    )
    return {
        (account_id, stream, key): KeySummary(
            times_seen=times_seen, type_counts=json.loads(type_counts), first_seen=first_seen,
            last_seen=last_seen, sketch=list(sketch or []), samples=json.loads(samples),
        )
        for account_id, stream, key, times_seen, type_counts, first_seen, last_seen, sketch,
        samples in cursor.fetchall()
    }


def _room_for_new_keys(cursor: Any, streams: set[StreamKey]) -> dict[StreamKey, int]:
    accounts, names = zip(*streams, strict=True)
    cursor.execute(
        """
        SELECT x.a, x.s, count(k.id)
        FROM unnest(%s::bigint[], %s::text[]) AS x(a, s)
        LEFT JOIN profiles_rawkey k ON k.account_id = x.a AND k.stream = x.s
        GROUP BY x.a, x.s
        """,
        [list(accounts), list(names)],
    )
    return {(a, s): MAX_KEYS_PER_STREAM - n for a, s, n in cursor.fetchall()}


def _write_keys(cursor: Any, keys: dict[tuple[int, str, str], KeySummary]) -> None:
    if not keys:
        return
    stored = _stored_keys(cursor, keys)
    new_streams = {(a, s) for (a, s, p) in keys if (a, s, p) not in stored}
    new_accounts: set[int] = set()
    room = _room_for_new_keys(cursor, new_streams) if new_streams else {}
    rows: list[tuple[Any, ...]] = []
    for ident, summary in keys.items():
        older = stored.get(ident)
        if older is None:
            stream_key = (ident[0], ident[1])
            if room[stream_key] <= 0:
                continue  # the stream has as many keys as we track; new ones are not kept
            room[stream_key] -= 1
            new_accounts.add(ident[0])
            merged = summary
        else:
            merged = summary.merge_older(older)
        rows.append((*ident, merged))
    if not rows:
        return
    columns: list[list[Any]] = [[] for _ in range(10)]
    for account_id, stream, key, merged in rows:
        for column, value in zip(columns, (
            account_id, stream, key, merged.predicted_type,
            json.dumps(merged.type_counts, sort_keys=True),
            merged.first_seen, merged.last_seen, merged.times_seen,
            "{" + ",".join(map(str, merged.sketch)) + "}",
            json.dumps(merged.samples, ensure_ascii=False, default=str),
        ), strict=True):
            column.append(value)
    cursor.execute(
        """
        INSERT INTO profiles_rawkey (account_id, stream, key, predicted_type, type_counts,
            first_seen, last_seen, times_seen, sketch, samples, times_used_by_mappings, hidden)
        SELECT a, s, k, p, tc::jsonb, fs, ls, n, sk::bigint[], sm::jsonb, 0, false
        FROM unnest(%s::bigint[], %s::text[], %s::text[], %s::text[], %s::text[],
                    %s::timestamptz[], %s::timestamptz[], %s::bigint[], %s::text[], %s::text[])
            AS x(a, s, k, p, tc, fs, ls, n, sk, sm)
        JOIN cdp_site_account account ON account.id = x.a
        ON CONFLICT (account_id, stream, key) DO UPDATE
        SET predicted_type = EXCLUDED.predicted_type, type_counts = EXCLUDED.type_counts,
            first_seen = EXCLUDED.first_seen, last_seen = EXCLUDED.last_seen,
            times_seen = EXCLUDED.times_seen, sketch = EXCLUDED.sketch,
            samples = EXCLUDED.samples
        """,
        columns,
    )
    if new_accounts:  # new keys start at 0 uses: count them against the live schema now
        recompute_live_key_usage(new_accounts)


# Blocked events: failed events refused by a tracking plan in ``block`` mode.

_FAILED_COLUMNS = (
    "account_id, stream, received_at, "
    "CASE WHEN code = 'tracking_plan' AND account_id IS NOT NULL THEN body END, "
    "CASE WHEN code = 'tracking_plan' AND account_id IS NOT NULL THEN reason END"
)

_PLAN_NAME = re.compile(r"tracking plan for '((?:[^'\\]|\\.)*)'")


def blocked_event_name(body: str | None, reason: str) -> str:
    """The event name (or message type) a blocked message was sent with."""
    try:
        message = json.loads(body or "")
    except ValueError:
        message = None
    if isinstance(message, dict):
        name = message.get("event") or message.get("type")
        if isinstance(name, str) and name:
            return name[:200]
    found = _PLAN_NAME.search(reason or "")
    return found.group(1)[:200] if found else ""


def aggregate_failed_chunk(
    chunk_size: int = CHUNK_SIZE, settle_seconds: float = SETTLE_SECONDS
) -> int:
    """Count the next chunk of blocked events per stream, event name and day."""
    with transaction.atomic(), connection.cursor() as cursor:
        last_id = _locked_cursor(cursor, FAILED_CURSOR)
        rows, _horizon, _complete = _fetch_settled(cursor, "profiles_failedevent",
                                                   _FAILED_COLUMNS, last_id, chunk_size,
                                                   settle_seconds)
        if not rows:
            return 0
        blocked: dict[tuple[int, str, str, date], int] = {}
        for _id, account_id, stream, received_at, body, reason, _settle in rows:
            if reason is None:
                continue
            name = blocked_event_name(body, reason)
            key = (account_id, stream, name, received_at.astimezone(UTC).date())
            blocked[key] = blocked.get(key, 0) + 1
        _write_violations(cursor, blocked, column="blocked")
        _move_cursor(cursor, FAILED_CURSOR, rows[-1][0])
        return len(rows)


def aggregate_streams(
    *,
    chunk_size: int = CHUNK_SIZE,
    settle_seconds: float = SETTLE_SECONDS,
    max_seconds: float | None = None,
    workers: int = 0,
    read_ahead: bool = False,
) -> AggregateResult:
    """Catch up with the raw store (and the blocked events), chunk by chunk, until nothing
    settled is left or ``max_seconds`` have passed. Safe to run concurrently. ``workers``
    above 1 summarises each chunk in that many worker processes; ``read_ahead`` reads the next
    chunk on a second connection while one is summarised (for the long-running process: the
    helper's connection sees only committed rows, as every writer's rows are once below the
    horizon)."""
    started = time.monotonic()
    result = AggregateResult()
    prefetched: _Prefetch | None = None
    while True:
        read, prefetched = aggregate_raw_chunk(chunk_size, settle_seconds, workers,
                                               read_ahead=read_ahead, prefetched=prefetched)
        failed = aggregate_failed_chunk(chunk_size, settle_seconds)
        if not read and not failed:
            break
        result.events += read
        result.failed_events += failed
        result.chunks += 1
        if max_seconds is not None and time.monotonic() - started >= max_seconds:
            break
    result.seconds = time.monotonic() - started
    return result
