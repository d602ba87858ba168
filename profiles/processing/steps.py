"""The profiles steps of a processing run (DESIGN.md, "How data travels", steps 1-4), each a
plain function over a ``Batch`` (profiles.processing.batch), named in
``settings.STRATA_PIPELINE_STEPS`` and run in order by ``profiles.processing.pipeline``:

- ``route``: route rules move events between streams;
- ``map_fields``: the mappings of the live schema give each event its field values (coerced
  to their type) and identifiers;
- ``identify``: identity resolution (profiles.processing.identity) gives each event its
  profile; its ``prepare`` does the reads before the account's turn;
- ``merge``: field states folded with each field's merge operator, profiles and profile events
  written.

``route`` and ``map_fields`` are ``unordered``: they run before the turn, in parallel with
other workers. Per-event problems do not fail the batch: an expression error fails that event
(it goes to the failed events, stage ``process``); a value that does not fit its field, or an
identifier value that cannot be one, is skipped with a warning (``EventWarning``) and the rest
of the event applies. ``refresh_aged_values`` recomputes, as time passes, the public values
``merge`` computes.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from profiles.processing.batch import (
    Batch,
    PipelineEvent,
    Prepared,
    ProfileRow,
    RetryBatch,
    unordered,
)
from profiles.processing.event_properties import own_properties
from profiles.processing.identity import (
    EventIdentifiers,
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
from profiles.schema.compiled import live_schema
from profiles.schema.expressions import ExpressionError
from profiles.schema.merge import FieldTypeError, MergeError, coerce, to_json

__all__ = ["identify", "map_fields", "merge", "prepare_identify", "refresh_aged_values",
           "route"]

MAX_ROUTE_HOPS = 10


# --------------------------------------------------------------------------- route, map


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


# --------------------------------------------------------------------------- identify


def identify(batch: Batch) -> None:
    """Identity resolution over the batch in receive order (profiles.processing.identity).

    What ``prepare_identify`` read before the turn (without locks) is checked first: the
    profiles it read are locked, and those changed since (their row version, ``xmin``, moved)
    are read again, with their identifiers. That is enough because every change to a
    profile's identifiers (one attached, moved by a merge, compacted) updates the profile's row
    in the same transaction. Identifiers nobody owned then are looked up again (an earlier
    batch may have created them). Then resolution, and bulk writes."""
    schema = batch.schema
    events = _identified_events(batch)
    if schema is None or not events:
        return
    identifier_fields = schema.identifiers
    graph = IdentityGraph(
        capacities={n: f.identifier_capacity for n, f in identifier_fields.items()},
        max_identifiers=batch.max_identifiers,
        ranks={n: f.identifier_rank for n, f in identifier_fields.items()
               if f.identifier_rank is not None})
    prepared = batch.prepared if batch.prepared is not None else Prepared(_keys(events))
    rows = _bring_up_to_date(batch.account_id, prepared, graph)
    for ev in events:
        resolved = EventIdentifiers(ev.raw_event_id, ev.at, ev.identifiers)
        ev.profile_key = graph.resolve(resolved)
        if resolved.refused:
            _drop_refused_values(ev, resolved.refused, schema.fields)
    new_ids = allocate_profile_ids(len(graph.new_profiles))
    ids = _profile_ids(graph, new_ids)
    batch.graph = graph
    batch.profile_ids = ids
    batch.profile_rows = rows
    batch.new_profiles = set(new_ids)
    for ev in events:
        ev.profile_id = ids[graph.final(ev.profile_key)] if ev.profile_key is not None else None
    write_identity(batch.account_id, graph, ids, batch.now)


def _drop_refused_values(ev: PipelineEvent, refused: set[tuple[str, str]],
                         fields: dict[str, Any]) -> None:
    """The identifier values its profile does not own taken out of the event's data (DESIGN.md,
    identity rule 3): a shared device's cookie is not written into every profile that used
    the device, nor a second email over the profile's own."""
    names = {name for name, _value in refused}
    values, cells = [], []
    for (name, value), cell in zip(ev.values, ev.cells, strict=True):
        if name in names:
            if not isinstance(value, list):
                if (name, identifier_text(value)) in refused:
                    continue
            else:
                kept = [v for v in value if (name, identifier_text(v)) not in refused]
                if not kept:
                    continue
                if len(kept) != len(value):
                    value, cell = kept, fields[name].operator.single(kept, ev.at)
        values.append((name, value))
        cells.append(cell)
    ev.values, ev.cells = values, cells


def _identified_events(batch: Batch) -> list[PipelineEvent]:
    """The live events carrying an identifier. One with values but no identifier gets a
    warning: its data belongs to no profile."""
    events = []
    for ev in batch.live:
        if ev.identifiers:
            events.append(ev)
        elif ev.values:
            ev.warnings.append(("no_identifier", "", "the event has values but no identifier, "
                                "so it belongs to no profile"))
    return events


def _bring_up_to_date(account_id: int, prepared: Prepared, graph: IdentityGraph
                      ) -> dict[int, ProfileRow]:
    """Under the turn: the profiles ``prepare_identify`` read, locked, and those changed
    since dropped; their identifiers into the graph; then the owners of the keys the graph
    does not know yet (``_add_owners``). The profile rows by id."""
    rows = prepared.rows
    current = _lock_profiles(account_id, sorted(rows))
    vanished = set(rows) - set(current)
    if vanished:
        raise RetryBatch(f"profiles {sorted(vanished)[:5]} were deleted while the batch ran")
    changed = {pid for pid, version in current.items() if version != rows[pid].xmin}
    for ident in prepared.identifiers:
        if ident.profile not in changed:
            graph.add_loaded(ident)
    for pid in changed:
        del rows[pid]
    _add_owners(account_id, prepared.keys, rows, graph)
    return rows


def _add_owners(account_id: int, keys: set[tuple[str, str]], rows: dict[int, ProfileRow],
                graph: IdentityGraph) -> None:
    """The profiles owning those of ``keys`` the graph does not know (nobody owned them when
    prepared, or their profile changed since): locked and read into ``rows``, their
    identifiers into the graph."""
    owners = probe_keys(account_id, [k for k in keys if k not in graph.owner])
    fresh = set(owners.values()) - set(rows)
    if not fresh:
        return
    loaded = _load_profile_rows(account_id, fresh, lock=True)
    if len(loaded) != len(fresh):
        vanished = sorted(fresh - set(loaded))[:5]
        raise RetryBatch(f"profiles {vanished} were deleted while the batch ran")
    rows.update(loaded)
    for ident in identifiers_of(account_id, fresh):
        graph.add_loaded(ident)


def _profile_ids(graph: IdentityGraph, new_ids: list[int]) -> dict[int, int]:
    """Identity key -> profile id, for every key the graph resolved to: a new profile's key
    (negative) gets the id allocated for it, an existing profile's key is its id."""
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
    return ids


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
    batch.prepared = Prepared(keys, rows, identifiers_of(batch.account_id, rows))


identify.prepare = prepare_identify  # type: ignore[attr-defined]


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
                       ) -> dict[int, ProfileRow]:
    """The profiles' merge states and counters, by id (locked in id order when ``lock``)."""
    if not ids:
        return {}
    query = _LOAD_PROFILES + (" ORDER BY id FOR NO KEY UPDATE" if lock else "")
    with db_cursor() as cursor:
        cursor.execute(query, {"account": account_id, "ids": sorted(ids)})
        return {pid: ProfileRow(from_json_text(states) if states else {}, first, last, count,
                                conflicts, compactions, xmin=version)
                for pid, version, states, first, last, count, conflicts, compactions
                in cursor.fetchall()}


# --------------------------------------------------------------------------- merge

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
    properties, own_properties)
SELECT %(account)s, u.p, u.r, u.s, u.e, u.a, u.j, u.o
FROM json_to_recordset(%(rows)s::json) AS u(p bigint, r bigint, s text, e text,
                                            a timestamptz, j jsonb, o jsonb)
"""


def merge(batch: Batch) -> None:
    """Fold each event's values into its profile's field states, and merged-away profiles into
    their survivors; write profiles (new ones, changed ones, merged-away ones), move the events
    of merged-away profiles, and add a profile event per event."""
    graph, schema = batch.graph, batch.schema
    if graph is None or schema is None:
        return
    ids = batch.profile_ids
    merged = _merged_away(graph, ids)
    batch.merged = merged
    rows = _rows_to_fold(batch, graph, merged)
    fields = schema.fields
    _fold_merged(rows, merged, fields)
    _count_conflicts(rows, graph, ids)
    events_out = _fold_events(batch.live, rows, fields)
    inserts, updates = _profile_writes(batch, graph, rows, merged, fields)
    _write(batch, inserts, updates, merged, events_out)


def _merged_away(graph: IdentityGraph, ids: dict[int, int]) -> dict[int, int]:
    """Merged-away profile id -> its survivor's id (after every merge of the batch); profiles
    that never got a row (``graph.dropped``) left out."""
    return {ids[gone]: ids[graph.final(gone)] for gone in graph.survivor
            if gone not in graph.dropped}


def _rows_to_fold(batch: Batch, graph: IdentityGraph, merged: dict[int, int]
                  ) -> dict[int, ProfileRow]:
    """The profiles ``identify`` read (and locked), plus an empty row per new profile."""
    rows, ids = batch.profile_rows, batch.profile_ids
    needed = {e.profile_id for e in batch.live if e.profile_id is not None}
    needed |= set(merged) | set(merged.values())
    needed |= {ids[key] for key in [*graph.conflicts, *graph.compactions]}
    unread = sorted(pid for pid in needed if pid not in rows and pid not in batch.new_profiles)
    if unread:  # pragma: no cover - identify reads every profile the graph names
        raise RuntimeError(f"profiles {unread[:5]} were not read by identify")
    for pid in batch.new_profiles:
        rows[pid] = ProfileRow({}, None, None, exists=False, changed=True)
    return rows


def _fold_merged(rows: dict[int, ProfileRow], merged: dict[int, int], fields: dict[str, Any]
                 ) -> None:
    """Each merged-away profile's states and counts folded into its survivor's; its own
    emptied."""
    for gone_id, keep_id in merged.items():
        gone, keep = rows[gone_id], rows[keep_id]
        for name, state in gone.states.items():
            spec = fields.get(name)
            if spec is None:  # a field no longer in the schema: keep what the survivor has
                keep.states.setdefault(name, state)
                continue
            keep.states[name] = spec.operator.merge(keep.states.get(name), state,
                                                    spec.capacity)
        keep.event_count += gone.event_count
        keep.first_seen = _min(keep.first_seen, gone.first_seen)
        keep.last_seen = _max(keep.last_seen, gone.last_seen)
        gone.states, gone.event_count, gone.changed, keep.changed = {}, 0, True, True


def _count_conflicts(rows: dict[int, ProfileRow], graph: IdentityGraph, ids: dict[int, int]
                     ) -> None:
    """The batch's identity conflicts and compactions added to their profiles' counters."""
    for key, n in graph.conflicts.items():
        rows[ids[key]].conflicts += n
        rows[ids[key]].changed = True
    for key, n in graph.compactions.items():
        rows[ids[key]].compactions += n
        rows[ids[key]].changed = True


def _fold_events(events: list[PipelineEvent], rows: dict[int, ProfileRow],
                 fields: dict[str, Any]) -> list[dict[str, Any]]:
    """Each event's values folded into its profile's states (a value its operator refuses is
    skipped with a warning), and its counters moved; the profile events to insert."""
    events_out: list[dict[str, Any]] = []
    for ev in events:
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
                           "e": (ev.event or ev.type)[:200], "a": ev.at, "j": properties,
                           "o": own_properties(ev.message)})
    return events_out


def _profile_writes(batch: Batch, graph: IdentityGraph, rows: dict[int, ProfileRow],
                    merged: dict[int, int], fields: dict[str, Any]
                    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The changed rows as profiles to insert (new) and to update, with their public values
    (none for a merged-away profile); the surviving ones go to ``batch.changed_profiles``."""
    ids = batch.profile_ids
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
    return inserts, updates


def _write(batch: Batch, inserts: list[dict[str, Any]], updates: list[dict[str, Any]],
           merged: dict[int, int], events_out: list[dict[str, Any]]) -> None:
    """Profiles inserted and updated, rows of merged-away profiles moved to their survivors,
    profile events added."""
    account = batch.account_id
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
    """The public values of a profile's field states (a value past its ``keep_days`` is
    gone)."""
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

