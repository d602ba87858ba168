"""Processing: raw events become profiles (DESIGN.md, "How data travels", steps 1-4 and on).

A run is a list of steps named in ``settings.STRATA_PIPELINE_STEPS``, each a plain function
over a ``Batch``: ``route`` (route rules), ``map_fields`` (mappings of the live schema),
``identify`` (profiles.processing.identity), ``merge`` (field states folded with each field's merge
operator, profiles and profile events written), then whatever the apps downstream add (their
steps read ``batch.changed_profiles`` and ``batch.merged``). ``profiles`` never imports them.

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
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import DatabaseError, InterfaceError, OperationalError, connection, transaction
from django.utils import timezone
from django.utils.module_loading import import_string

from profiles.collection.messages import MESSAGE_ID_MAX
from profiles.models import EventWarning, FailedEvent, PendingEvent, ProcessingStat
from profiles.processing.identity import (
    EventIdentifiers,
    Ident,
    IdentityGraph,
    allocate_profile_ids,
    db_cursor,
    from_json_text,
    identifier_problem,
    identifier_text,
    identifiers_of,
    probe_keys,
    to_json_text,
    write_identity,
)
from profiles.schema.compiled import CompiledSchema, event_view, live_schema
from profiles.schema.expressions import ExpressionError
from profiles.schema.merge import FieldTypeError, MergeError, coerce, to_json

if TYPE_CHECKING:
    from collections.abc import Callable

    from cdp_site.models import Account

log = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_STEPS",
    "Batch",
    "BatchFailed",
    "BatchResult",
    "PipelineEvent",
    "ProcessingStatus",
    "RetryBatch",
    "identify",
    "map_fields",
    "merge",
    "pending_accounts",
    "process_batch",
    "process_pending",
    "processing_status",
    "refresh_aged_values",
    "route",
    "set_aside",
    "unordered",
]

DEFAULT_BATCH = 1000
MAX_ROUTE_HOPS = 10
MAX_RETRIES = 5  # batches retried in one process_pending call before giving up
MAX_SET_ASIDE_STREAK = 3  # events set aside in a row, nothing succeeding, before raising
DEFAULT_STEPS = [
    "profiles.processing.pipeline.route",
    "profiles.processing.pipeline.map_fields",
    "profiles.processing.pipeline.identify",
    "profiles.processing.pipeline.merge",
]
_CLAIM_BIT = 1 << 29
_TICKET_BIT = 1 << 30
_LOW = (1 << 32) - 1


# --------------------------------------------------------------------------- the batch


class RetryBatch(RuntimeError):
    """Something the batch relied on changed under it (a profile deleted by a GDPR request
    while the batch resolved identities): the batch rolls back, its events go back to the
    queue and are processed again."""


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
class PipelineEvent:
    """One raw event on its way through the steps."""

    raw_event_id: int
    stream: str  # after route rules
    source_stream: str
    type: str
    event: str
    message_id: str
    at: datetime
    received_at: datetime
    message: dict[str, Any]
    values: list[tuple[str, Any]] = field(default_factory=list)  # (field, value as JSON)
    cells: list[Any] = field(default_factory=list)  # each value's one-event operator state
    identifiers: list[tuple[int, str, str]] = field(default_factory=list)
    warnings: list[tuple[str, str, str]] = field(default_factory=list)  # code, field, message
    failure: tuple[str, str] | None = None  # code, reason
    profile_key: int | None = None
    profile_id: int | None = None  # the surviving profile its data went to

    def fail(self, code: str, reason: str) -> None:
        if self.failure is None:
            self.failure = (code, reason)


@dataclass
class Batch:
    """What the steps share. Downstream steps read ``changed_profiles`` (ids of surviving
    profiles whose data changed), ``merged`` (merged-away id -> survivor id) and ``events``;
    ``extra`` is theirs to pass data between their own steps."""

    account_id: int
    schema: CompiledSchema | None
    events: list[PipelineEvent]
    now: datetime
    max_identifiers: int = 50
    graph: IdentityGraph | None = None
    profile_ids: dict[int, int] = field(default_factory=dict)  # identity key -> profile id
    changed_profiles: set[int] = field(default_factory=set)
    new_profiles: set[int] = field(default_factory=set)
    merged: dict[int, int] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    # identify's own: what it read before the turn, and the profiles it read (for merge)
    prepared: _Prepared | None = None
    profile_rows: dict[int, _ProfileRow] = field(default_factory=dict)

    @property
    def live(self) -> list[PipelineEvent]:
        """The events still going (not failed)."""
        return [e for e in self.events if e.failure is None]


@dataclass
class BatchResult:
    account_id: int
    events: int
    failed: int
    warnings: int
    profiles_changed: int
    seconds: float
    waited: float


Step = "Callable[[Batch], None]"


def unordered(step: Callable[[Batch], None]) -> Callable[[Batch], None]:
    """Mark a step that needs no profile state and may run before the account's turn (in
    parallel with other workers' batches of the same account)."""
    step.unordered = True  # type: ignore[attr-defined]
    return step


@cache
def _load_steps(names: tuple[str, ...]) -> list[Callable[[Batch], None]]:
    return [import_string(name) for name in names]


def pipeline_steps() -> list[Callable[[Batch], None]]:
    return _load_steps(tuple(getattr(settings, "STRATA_PIPELINE_STEPS", DEFAULT_STEPS)))


# --------------------------------------------------------------------------- steps


@unordered
def route(batch: Batch) -> None:
    """Route rules: the first matching active rule of an event's stream (highest priority
    first) moves it to its output stream, whose rules then apply in turn."""
    if batch.schema is None or not batch.schema.routes:
        return
    routes = batch.schema.routes
    for ev in batch.live:
        for _hop in range(MAX_ROUTE_HOPS):
            rules = routes.get(ev.stream)
            if not rules:
                break
            try:
                target = next((r.output_stream for r in rules
                               if r.expression.matches(ev.message, ev.at)), None)
            except ExpressionError as exc:
                ev.fail("route_error", f"route rule on stream {ev.stream!r}: {exc}")
                break
            if target is None:
                break
            ev.stream = target


@unordered
def map_fields(batch: Batch) -> None:
    """Mappings of the event's stream: values coerced to their field's type; identifier values
    checked. An expression error fails the event; a value that does not fit its field, or an
    identifier value that cannot be one, is skipped with a warning."""
    if batch.schema is None:
        return
    mappings = batch.schema.mappings
    for ev in batch.live:
        for mapping in mappings.get(ev.stream, ()):
            spec = mapping.field
            try:
                if mapping.guard is not None and not mapping.guard.matches(ev.message, ev.at):
                    continue
                raw = mapping.expression.evaluate(ev.message, ev.at)
            except ExpressionError as exc:
                ev.fail("expression_error", f"mapping of {spec.name}: {exc}")
                break
            if raw is None:
                continue
            try:
                value = coerce(spec.type, raw)
            except FieldTypeError as exc:
                ev.warnings.append(("type_mismatch", spec.name, str(exc)))
                continue
            if value is None:
                continue
            if spec.identifier_rank is not None:
                value = _identifier_values(ev, spec.name, spec.identifier_rank, value)
                if value is None:
                    continue
            try:  # the operator's one-event state, prepared here, outside the ordered part
                as_json = to_json(value)
                cell = spec.operator.single(as_json, ev.at)
            except MergeError as exc:
                ev.warnings.append(("merge_error", spec.name, str(exc)))
                continue
            ev.values.append((spec.name, as_json))
            ev.cells.append(cell)


def _identifier_values(ev: PipelineEvent, name: str, rank: int, value: Any) -> Any:
    """Record an identifier field's valid values on the event; the value without the invalid
    ones (None when nothing is left)."""
    items = value if isinstance(value, list) else [value]
    kept = []
    for item in items:
        problem = identifier_problem(item)
        if problem:
            ev.warnings.append(("invalid_identifier", name,
                                f"{name} {problem}; ignored as an identifier"))
            continue
        text = identifier_text(item)
        ev.identifiers.append((rank, name, text))
        kept.append(item)
    if not kept:
        return None
    return kept if isinstance(value, list) else kept[0]


def identify(batch: Batch) -> None:
    """Identity resolution over the batch in receive order (profiles.processing.identity).

    What ``prepare_identify`` read before the turn (without locks) is checked first: the
    profiles it read are locked, and those changed since (their row version, ``xmin``, moved)
    are read again, with their identifiers. That is enough because every change to a
    profile's identifiers (one attached, moved by a merge, compacted) updates the profile's row
    in the same transaction. Identifiers nobody owned then are looked up again (an earlier
    batch may have created them). Then resolution, and bulk writes."""
    schema = batch.schema
    events = []
    for ev in batch.live:
        if ev.identifiers:
            events.append(ev)
        elif ev.values:
            ev.warnings.append(("no_identifier", "", "the event has values but no identifier, "
                                "so it belongs to no profile"))
    if schema is None or not events:
        return
    account = batch.account_id
    capacities = {n: f.identifier_capacity for n, f in schema.identifiers.items()}
    graph = IdentityGraph(capacities=capacities, max_identifiers=batch.max_identifiers)
    prepared = batch.prepared if batch.prepared is not None else _Prepared(_keys(events))
    rows = prepared.rows
    current = _lock_profiles(account, sorted(rows))
    vanished = set(rows) - set(current)
    if vanished:
        raise RetryBatch(f"profiles {sorted(vanished)[:5]} were deleted while the batch ran")
    changed = {pid for pid, version in current.items() if version != rows[pid].xmin}
    for ident in prepared.identifiers:
        if ident.profile not in changed:
            graph.add_loaded(ident)
    for pid in changed:
        del rows[pid]
    owners = probe_keys(account, [k for k in prepared.keys if k not in graph.owner])
    fresh = set(owners.values()) - set(rows)
    if fresh:
        loaded = _load_profile_rows(account, fresh, lock=True)
        if len(loaded) != len(fresh):
            vanished = sorted(fresh - set(loaded))[:5]
            raise RetryBatch(f"profiles {vanished} were deleted while the batch ran")
        rows.update(loaded)
        for ident in identifiers_of(account, fresh):
            graph.add_loaded(ident)
    for ev in events:
        ev.profile_key = graph.resolve(EventIdentifiers(ev.raw_event_id, ev.at,
                                                        ev.identifiers))
    new_ids = allocate_profile_ids(len(graph.new_profiles))
    ids = dict(zip(graph.new_profiles, new_ids, strict=True))
    for key in graph.holdings:
        if key > 0:
            ids[key] = key
    for gone, keep in graph.survivor.items():
        if gone > 0:
            ids[gone] = gone
        if keep > 0:
            ids[keep] = keep
    for key in [*graph.conflicts, *graph.compactions]:
        if key > 0:
            ids[key] = key
    batch.graph = graph
    batch.profile_ids = ids
    batch.profile_rows = rows
    batch.new_profiles = set(new_ids)
    for ev in events:
        ev.profile_id = ids[graph.final(ev.profile_key)] if ev.profile_key is not None else None
    write_identity(account, graph, ids, batch.now)


def _keys(events: list[PipelineEvent]) -> set[tuple[str, str]]:
    return {(name, value) for ev in events for _rank, name, value in ev.identifiers}


def prepare_identify(batch: Batch) -> None:
    """Before the turn (in parallel with other workers): the batch's identifiers, the
    profiles owning them (their states, for merge) and those profiles' identifiers, read
    without locks; ``identify`` checks under the turn what changed since. The profile rows are
    read before their identifiers, so that a change in between shows as a changed row."""
    if batch.schema is None:
        return
    keys = _keys(batch.live)
    if not keys:
        return
    owners = probe_keys(batch.account_id, keys)
    rows = _load_profile_rows(batch.account_id, set(owners.values()), lock=False)
    batch.prepared = _Prepared(keys, rows, identifiers_of(batch.account_id, rows))


identify.prepare = prepare_identify  # type: ignore[attr-defined]


@dataclass
class _Prepared:
    """What ``prepare_identify`` read: the identifier keys of the batch, the profiles owning
    them (by id) and their identifiers."""

    keys: set[tuple[str, str]]
    rows: dict[int, _ProfileRow] = field(default_factory=dict)
    identifiers: list[Ident] = field(default_factory=list)


# The account as a filter only (``+ 0``; see _REPOINT).
_LOCK_PROFILES = """
SELECT id, xmin::text FROM profiles_profile
WHERE id = ANY(%(ids)s::bigint[]) AND account_id + 0 = %(account)s
ORDER BY id FOR NO KEY UPDATE
"""
_LOAD_PROFILES = """
SELECT id, xmin::text, states::text, first_seen, last_seen, event_count, conflicts, compactions
FROM profiles_profile WHERE id = ANY(%(ids)s::bigint[]) AND account_id + 0 = %(account)s
"""


def _lock_profiles(account_id: int, ids: list[int]) -> dict[int, str]:
    """Lock profiles in id order (a GDPR delete locks its profiles first too, so neither
    waits on the other halfway): the row version (``xmin``) of each still there."""
    if not ids:
        return {}
    with db_cursor() as cursor:
        cursor.execute(_LOCK_PROFILES, {"account": account_id, "ids": ids})
        return dict(cursor.fetchall())


def _load_profile_rows(account_id: int, ids: set[int], *, lock: bool
                       ) -> dict[int, _ProfileRow]:
    """The profiles' merge states and counters, by id (locked in id order when ``lock``)."""
    if not ids:
        return {}
    query = _LOAD_PROFILES + (" ORDER BY id FOR NO KEY UPDATE" if lock else "")
    with db_cursor() as cursor:
        cursor.execute(query, {"account": account_id, "ids": sorted(ids)})
        return {pid: _ProfileRow(from_json_text(states) if states else {}, first, last, count,
                                 conflicts, compactions, xmin=version)
                for pid, version, states, first, last, count, conflicts, compactions
                in cursor.fetchall()}


_INSERT_PROFILES = """
INSERT INTO profiles_profile (id, account_id, states, field_values, first_seen, last_seen,
    event_count, conflicts, compactions, identifier_count, size, merged_into_id, created_at,
    updated_at)
SELECT u.id, %(account)s, u.s, u.v, u.fs, u.ls, u.ec, u.c, u.k, u.ic, pg_column_size(u.s),
    u.mi, %(now)s, %(now)s
FROM json_to_recordset(%(rows)s::json)
     AS u(id bigint, s jsonb, v jsonb, fs timestamptz, ls timestamptz, ec bigint, c int, k int,
          ic int, mi bigint)
"""
_UPDATE_PROFILES = """
UPDATE profiles_profile p SET states = u.s, field_values = u.v, first_seen = u.fs,
    last_seen = u.ls, event_count = u.ec, conflicts = u.c, compactions = u.k,
    identifier_count = u.ic, size = pg_column_size(u.s), merged_into_id = u.mi,
    updated_at = %(now)s
FROM json_to_recordset(%(rows)s::json)
     AS u(id bigint, s jsonb, v jsonb, fs timestamptz, ls timestamptz, ec bigint, c int, k int,
          ic int, mi bigint)
WHERE p.id = u.id
"""
# Rows pointing at merged-away profiles, moved to the survivors. The rows are found one index
# probe per merged-away profile (a lateral subquery that ``OFFSET 0`` keeps the planner from
# flattening) and updated by id, whatever the statistics say: on statistics that lag behind a
# fast-growing account (a new account, a rebuild, autovacuum off) the planner ANDed the
# account_id index into a plain join (every row of the account read per batch: a 1 M event run
# slowed from 2,600 to 150 events/s), and on a table never analysed it scanned the whole table
# (2 s a statement on a 200,000 event rebuild). The account is checked as a filter only
# (``+ 0``).
_REPOINT = """
UPDATE {table} t SET {column} = (
    SELECT u.keep FROM unnest(%(gone)s::bigint[], %(keep)s::bigint[]) AS u(gone, keep)
    WHERE u.gone = t.{column} LIMIT 1)
WHERE t.id = ANY(ARRAY(
    SELECT r.id FROM unnest(%(gone)s::bigint[]) AS g(id)
    CROSS JOIN LATERAL (SELECT id FROM {table}
                        WHERE {column} = g.id AND account_id + 0 = %(account)s OFFSET 0) r))
"""
_INSERT_EVENTS = """
INSERT INTO profiles_profileevent (account_id, profile_id, raw_event_id, stream, event, at,
    properties)
SELECT %(account)s, u.p, u.r, u.s, u.e, u.a, u.j
FROM json_to_recordset(%(rows)s::json) AS u(p bigint, r bigint, s text, e text,
                                            a timestamptz, j jsonb)
"""


@dataclass
class _ProfileRow:
    states: dict[str, Any]
    first_seen: datetime | None
    last_seen: datetime | None
    event_count: int = 0
    conflicts: int = 0
    compactions: int = 0
    exists: bool = True
    changed: bool = False
    xmin: str | None = None  # the row version it was read at


def _encode(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def merge(batch: Batch) -> None:
    """Fold each event's values into its profile's field states, and merged-away profiles into
    their survivors; write profiles (new ones, changed ones, merged-away ones), move the events
    of merged-away profiles, and add a profile event per event."""
    graph, schema = batch.graph, batch.schema
    if graph is None or schema is None:
        return
    ids = batch.profile_ids
    account = batch.account_id
    final_id = {key: ids[graph.final(key)] for key in ids}
    merged = {ids[gone]: final_id[gone] for gone in graph.survivor if gone not in graph.dropped}
    batch.merged = merged
    rows = batch.profile_rows  # read (and locked) by identify
    needed = {e.profile_id for e in batch.live if e.profile_id is not None}
    needed |= set(merged) | set(merged.values())
    needed |= {ids[key] for key in [*graph.conflicts, *graph.compactions]}
    unread = sorted(pid for pid in needed if pid not in rows and pid not in batch.new_profiles)
    if unread:  # pragma: no cover - identify reads every profile the graph names
        raise RuntimeError(f"profiles {unread[:5]} were not read by identify")
    for pid in batch.new_profiles:
        rows[pid] = _ProfileRow({}, None, None, exists=False, changed=True)
    fields = schema.fields

    def fold(into: _ProfileRow, name: str, state: Any) -> None:
        spec = fields.get(name)
        if spec is None:  # a field no longer in the schema: keep what the survivor has
            into.states.setdefault(name, state)
            return
        into.states[name] = spec.operator.merge(into.states.get(name), state, spec.capacity)

    for gone_id, keep_id in merged.items():
        gone, keep = rows[gone_id], rows[keep_id]
        for name, state in gone.states.items():
            fold(keep, name, state)
        keep.event_count += gone.event_count
        keep.first_seen = _min(keep.first_seen, gone.first_seen)
        keep.last_seen = _max(keep.last_seen, gone.last_seen)
        gone.states, gone.event_count, gone.changed, keep.changed = {}, 0, True, True
    for key, n in graph.conflicts.items():
        rows[ids[key]].conflicts += n
        rows[ids[key]].changed = True
    for key, n in graph.compactions.items():
        rows[ids[key]].compactions += n
        rows[ids[key]].changed = True
    events_out: list[dict[str, Any]] = []
    for ev in batch.live:
        if ev.profile_id is None:
            continue
        row = rows[ev.profile_id]
        row.changed = True
        row.event_count += 1
        row.first_seen = _min(row.first_seen, ev.at)
        row.last_seen = _max(row.last_seen, ev.at)
        properties = {}
        for (name, value), cell in zip(ev.values, ev.cells, strict=True):
            spec = fields[name]
            try:
                row.states[name] = spec.operator.merge(row.states.get(name), cell,
                                                       spec.capacity)
            except MergeError as exc:
                ev.warnings.append(("merge_error", name, str(exc)))
                continue
            properties[name] = value
        events_out.append({"p": ev.profile_id, "r": ev.raw_event_id, "s": ev.stream,
                           "e": (ev.event or ev.type)[:200], "a": ev.at, "j": properties})
    inserts: list[dict[str, Any]] = []
    updates: list[dict[str, Any]] = []
    counts = {ids[key]: graph.count(key) for key in graph.holdings if key in ids}
    born = {ids[key]: at for key, at in graph.born_at.items() if key in ids}
    for pid, row in rows.items():
        if not row.changed:
            continue
        gone = pid in merged
        first = row.first_seen or born.get(pid, batch.now)
        (updates if row.exists else inserts).append({
            "id": pid, "s": row.states,
            "v": {} if gone else _values(row.states, fields, batch.now),
            "fs": first, "ls": row.last_seen or first, "ec": row.event_count,
            "c": row.conflicts, "k": row.compactions,
            "ic": 0 if gone else counts.get(pid, 0), "mi": merged.get(pid)})
        if not gone:
            batch.changed_profiles.add(pid)
    with db_cursor() as cursor:
        if inserts:
            cursor.execute(_INSERT_PROFILES, {"rows": to_json_text(inserts), "account": account,
                                              "now": batch.now})
        if updates:
            cursor.execute(_UPDATE_PROFILES, {"rows": to_json_text(updates), "now": batch.now})
            if cursor.rowcount != len(updates):  # deleted under the batch (they were locked)
                raise RetryBatch("profiles were deleted while the batch ran")
        old_gone = [g for g in merged if g not in batch.new_profiles]
        if old_gone:
            params = {"gone": old_gone, "keep": [merged[g] for g in old_gone],
                      "account": account}
            cursor.execute(_REPOINT.format(table="profiles_profileevent", column="profile_id"),
                           params)
            cursor.execute(_REPOINT.format(table="profiles_profile", column="merged_into_id"),
                           params)
        if events_out:
            cursor.execute(_INSERT_EVENTS, {"rows": to_json_text(events_out),
                                            "account": account})


def _values(states: dict[str, Any], fields: dict[str, Any], now: datetime) -> dict[str, Any]:
    out = {}
    for name, state in states.items():
        spec = fields.get(name)
        if spec is None:
            continue
        value = spec.operator.value(state, now, spec.keep_days)
        if value is not None:
            out[name] = value
    return out


def _min(a: datetime | None, b: datetime | None) -> datetime | None:
    return b if a is None else a if b is None else min(a, b)


def _max(a: datetime | None, b: datetime | None) -> datetime | None:
    return b if a is None else a if b is None else max(a, b)


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
                  steps: list[Callable[[Batch], None]] | None = None) -> BatchResult | None:
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
             steps: list[Callable[[Batch], None]], started: float) -> BatchResult:
    from cdp_site.models import Account

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
STEP_SECONDS: Counter[str] = Counter()


def _step_name(step: Callable[[Batch], None]) -> str:
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


# --------------------------------------------------------------------------- aging values

_AGED_CHUNK = """
SELECT id, states FROM profiles_profile
WHERE account_id = %(account)s AND id > %(after)s AND merged_into_id IS NULL
    AND field_values ?| %(fields)s::text[]
ORDER BY id LIMIT %(limit)s
FOR NO KEY UPDATE SKIP LOCKED
"""
_SET_VALUES = """
UPDATE profiles_profile p SET field_values = u.v, updated_at = %(now)s
FROM json_to_recordset(%(rows)s::json) AS u(id bigint, v jsonb)
WHERE p.id = u.id
"""


def refresh_aged_values(account_id: int, *, now: datetime | None = None, chunk: int = 1000
                        ) -> int:
    """Recompute the public values of profiles holding a field with ``keep_days`` (values
    are otherwise recomputed only when a profile changes, so one nobody touches would keep a
    value past its days). Profiles a batch holds are skipped (that batch recomputes them).
    Returns how many profiles changed."""
    schema = live_schema(account_id)
    if schema is None:
        return 0
    aging = sorted(n for n, f in schema.fields.items() if f.keep_days)
    if not aging:
        return 0
    now = now or timezone.now()
    changed = 0
    after = 0
    while True:
        with transaction.atomic(), db_cursor() as cursor:
            cursor.execute(_AGED_CHUNK, {"account": account_id, "after": after,
                                         "fields": aging, "limit": chunk})
            rows = cursor.fetchall()
            if not rows:
                return changed
            updates = []
            for pid, states in rows:
                states = json.loads(states) if isinstance(states, str) else states
                values = _values(states or {}, schema.fields, now)
                updates.append({"id": pid, "v": values})
            cursor.execute(_SET_VALUES, {"rows": to_json_text(updates), "now": now})
            changed += cursor.rowcount
            after = rows[-1][0]


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
