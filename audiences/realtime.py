"""Real-time membership: the pipeline step ``audiences.realtime.evaluate``.

After the profiles steps have written a batch (and consent and calculated attributes theirs),
each changed profile is re-evaluated against the audiences whose rules read something the
batch changed for it (``Audience.depends_on``):

- ``field:x``: the batch's events wrote field x for the profile (``PipelineEvent.values``);
  fields with ``keep_days`` count as changed whenever the profile is touched (values age);
- ``event:e``: the batch appended an event named e;
- ``attribute:x`` / ``consent:p``: ``batch.changed_attributes`` / ``batch.changed_consents``
  (profile id -> names);
- ``audience:slug``: that audience's membership of the profile changed just before (audiences
  are evaluated in dependency order).

New profiles and survivors of a merge are evaluated against every audience. Memberships of
merged-away profiles are removed (exits, cause ``merge``).

Everything the predicates read is loaded for the whole batch in a few queries: field values,
memberships, granted consents, the attribute values rules read, and per event condition one
count column of a single grouped query over the batch's profiles' events (the same row filter
as the batch SQL, ``compiler.event_filter_sql``). Entries and exits are written in bulk with
the raw event that caused them. Compiled predicates are cached per account, keyed by the
schema version, the calculated attributes and each audience's id, slug and version;
time-relative rules are compiled again per batch against the batch's ``now``.
"""

from __future__ import annotations

import json
import threading
from collections import defaultdict
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.utils import timezone

from audiences.compiler import (
    CompileContext,
    Predicate,
    ProfileView,
    compile_predicate,
    event_filter_sql,
    event_since,
    event_where_key,
)
from audiences.context import audience_order, compile_context
from audiences.models import Audience
from audiences.rules import RuleError, RuleSchema, node_kind, walk_nodes
from profiles.calculated.attributes import attribute_types
from profiles.processing.identity import db_cursor
from profiles.schema.compiled import live_schema
from profiles.schema.merge import FieldTypeError, MergeError, coerce, to_json

if TYPE_CHECKING:
    from profiles.processing.batch import Batch

__all__ = ["AudienceState", "Change", "account_state", "evaluate", "evaluate_profiles",
           "live_field_values", "live_memberships", "reevaluate"]

EventKey = tuple[str, str, "datetime | None"]  # name, where key, since


# ------------------------------------------------------------------------------ compiled state


@dataclass
class CompiledAudience:
    id: int
    slug: str
    version: int
    depends_on: frozenset[str]
    rule: dict[str, Any]
    time_relative: bool
    predicate: Predicate | None  # None: compiled per batch (time-relative) or not compilable
    broken: bool = False


@dataclass
class AudienceState:
    """An account's audiences ready to evaluate, in dependency order."""

    key: tuple[Any, ...]
    audiences: list[CompiledAudience]
    schema: RuleSchema
    slug_of: dict[int, str]
    needs_consents: bool = False
    attributes: frozenset[str] = frozenset()
    event_nodes: dict[int, list[dict[str, Any]]] = field(default_factory=dict)

    def predicates(self, ctx: CompileContext, only: Collection[int] | None = None
                   ) -> dict[int, Predicate]:
        """id -> predicate for ``ctx.now`` (time-relative rules compiled now), of every
        audience or of the ids in ``only``."""
        out = {}
        for a in self.audiences:
            if a.broken or (only is not None and a.id not in only):
                continue
            if a.predicate is not None:
                out[a.id] = a.predicate
                continue
            try:
                out[a.id] = compile_predicate(a.rule, ctx)
            except (RuleError, KeyError):
                continue  # the schema changed under the rule: the full compute reports it
        return out


_CACHE: dict[int, AudienceState] = {}
_CACHE_LOCK = threading.Lock()


def account_state(account_id: int, schema_fields: Mapping[str, str], schema_version: int,
                  now: datetime) -> AudienceState:
    """The account's compiled audiences (cached while nothing they depend on changed)."""
    heads = list(Audience.objects.filter(account_id=account_id, archived=False)
                 .values_list("pk", "slug", "version"))
    attributes = attribute_types(account_id)
    key = (schema_version, tuple(sorted(attributes.items())), tuple(sorted(heads)))
    with _CACHE_LOCK:
        cached = _CACHE.get(account_id)
    if cached is not None and cached.key == key:
        return cached
    schema = RuleSchema(dict(schema_fields), attributes)
    rows = list(Audience.objects.filter(account_id=account_id, archived=False)
                .only("pk", "slug", "name", "version", "rule", "depends_on", "time_relative"))
    ctx = compile_context(account_id, schema, now, {a.slug: a.pk for a in rows})
    compiled = []
    for a in audience_order(rows):
        predicate, broken = None, False
        if not a.time_relative:
            try:
                predicate = compile_predicate(a.rule, ctx)
            except (RuleError, KeyError):
                broken = True
        compiled.append(CompiledAudience(a.pk, a.slug, a.version, frozenset(a.depends_on),
                                         a.rule, a.time_relative, predicate, broken))
    state = AudienceState(key=key, audiences=compiled, schema=schema,
                          slug_of={a.id: a.slug for a in compiled})
    state.needs_consents = any(d.startswith("consent:") for a in compiled for d in a.depends_on)
    state.attributes = frozenset(d.partition(":")[2] for a in compiled for d in a.depends_on
                                 if d.startswith("attribute:"))
    state.event_nodes = {a.id: [n for n in walk_nodes(a.rule) if node_kind(n) == "event"]
                         for a in compiled}
    with _CACHE_LOCK:
        _CACHE[account_id] = state
    return state


# ------------------------------------------------------------------------------ loading


@dataclass
class Loaded:
    field_values: dict[int, dict[str, Any]]
    memberships: dict[int, set[str]]
    consents: dict[int, set[str]]
    attributes: dict[int, dict[str, Any]]
    counts: dict[EventKey, dict[int, int]]


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def _load(account_id: int, profile_ids: list[int], state: AudienceState,
          event_nodes: list[dict[str, Any]], ctx: CompileContext) -> Loaded:
    loaded = Loaded({}, defaultdict(set), defaultdict(set), defaultdict(dict), {})
    with db_cursor() as cur:
        cur.execute("SELECT id, field_values FROM profiles_profile "
                    "WHERE id = ANY(%s) AND account_id + 0 = %s", [profile_ids, account_id])
        loaded.field_values = {pid: _json(values) or {} for pid, values in cur.fetchall()}
        cur.execute("SELECT profile_id, audience_id FROM audiences_audiencemembership "
                    "WHERE profile_id = ANY(%s)", [profile_ids])
        for pid, audience_id in cur.fetchall():
            slug = state.slug_of.get(audience_id)
            if slug is not None:
                loaded.memberships[pid].add(slug)
        if state.needs_consents:
            cur.execute("SELECT profile_id, purpose FROM profiles_profileconsent "
                        "WHERE profile_id = ANY(%s) AND granted", [profile_ids])
            for pid, purpose in cur.fetchall():
                loaded.consents[pid].add(purpose)
        if state.attributes:
            cur.execute("SELECT profile_id, name, value FROM profiles_attributevalue "
                        "WHERE profile_id = ANY(%s) AND name = ANY(%s)",
                        [profile_ids, sorted(state.attributes)])
            for pid, name, value in cur.fetchall():
                loaded.attributes[pid][name] = _json(value)
        loaded.counts = _event_counts(cur, account_id, profile_ids, event_nodes, ctx)
    return loaded


def _event_counts(cur: Any, account_id: int, profile_ids: list[int],
                  nodes: list[dict[str, Any]], ctx: CompileContext
                  ) -> dict[EventKey, dict[int, int]]:
    """One grouped query: per distinct event condition, how many of each profile's events it
    counts."""
    columns: dict[EventKey, tuple[str, list[Any]]] = {}
    for node in nodes:
        key = (node["event"], event_where_key(node), event_since(node, ctx.now))
        if key not in columns:
            columns[key] = event_filter_sql(node, ctx)
    if not columns:
        return {}
    keys = list(columns)
    selects = ", ".join(f"count(*) FILTER (WHERE {columns[k][0]})" for k in keys)
    params = [p for k in keys for p in columns[k][1]]
    names = sorted({k[0] for k in keys})
    cur.execute(f"SELECT e.profile_id, {selects} FROM profiles_profileevent e "  # noqa: S608
                "WHERE e.account_id = %s AND e.profile_id = ANY(%s) AND e.event = ANY(%s) "
                "GROUP BY e.profile_id", [*params, account_id, profile_ids, names])
    counts: dict[EventKey, dict[int, int]] = {k: {} for k in keys}
    for row in cur.fetchall():
        for i, k in enumerate(keys, start=1):
            if row[i]:
                counts[k][row[0]] = row[i]
    return counts


def _counter(counts: dict[EventKey, dict[int, int]], pid: int
             ) -> Callable[[str, Any, datetime | None, int], int]:
    def count(name: str, where: Any, since: datetime | None, enough: int) -> int:
        return counts.get((name, where.key, since), {}).get(pid, 0)
    return count


# ------------------------------------------------------------------------------ evaluating


@dataclass(frozen=True)
class Change:
    audience_id: int
    profile_id: int
    kind: str  # entry | exit
    cause: str
    raw_event_id: int | None


def evaluate_profiles(state: AudienceState, predicates: Mapping[int, Predicate],
                      profile_ids: list[int], changed: Mapping[int, set[str] | None],
                      loaded: Loaded) -> list[tuple[int, int, bool]]:
    """(audience id, profile id, now a member) for every membership that flips. ``changed``
    says per profile what changed (None: everything)."""
    flips = []
    for pid in profile_ids:
        keys = changed.get(pid)
        members = loaded.memberships[pid]
        view = ProfileView(loaded.field_values.get(pid, {}), memberships=members,
                           consents=loaded.consents[pid], attributes=loaded.attributes[pid],
                           count_events=_counter(loaded.counts, pid))
        touched = None if keys is None else set(keys)
        for audience in state.audiences:
            if touched is not None and not (audience.depends_on & touched):
                continue
            predicate = predicates.get(audience.id)
            if predicate is None:
                continue
            now_in = predicate(view)
            if now_in == (audience.slug in members):
                continue
            flips.append((audience.id, pid, now_in))
            (members.add if now_in else members.discard)(audience.slug)
            if touched is not None:
                touched.add(f"audience:{audience.slug}")
    return flips


def _changed_keys(batch: Batch, aging: list[str]) -> tuple[dict[int, set[str] | None],
                                                           dict[int, int]]:
    """Per changed profile: what changed (None: re-evaluate everything), and its latest raw
    event id in the batch."""
    everything = set(batch.new_profiles) | set(batch.merged.values())
    changed: dict[int, set[str] | None] = {}
    raw: dict[int, int] = {}
    for pid in batch.changed_profiles:
        changed[pid] = None if pid in everything else {f"field:{f}" for f in aging}
    for ev in batch.live:
        if ev.profile_id is None or ev.profile_id not in changed:
            continue
        pid = ev.profile_id
        raw[pid] = max(raw.get(pid, 0), ev.raw_event_id)
        keys = changed[pid]
        if keys is not None:
            keys.add(f"event:{(ev.event or ev.type)[:200]}")
            keys.update(f"field:{name}" for name, _ in ev.values)
    for changes, prefix in ((batch.changed_attributes, "attribute"),
                            (batch.changed_consents, "consent")):
        for pid, names in changes.items():
            keys = changed.get(pid, set())
            if keys is not None:
                keys.update(f"{prefix}:{n}" for n in names)
                changed[pid] = keys
    return changed, raw


_ADD = """
INSERT INTO audiences_audiencemembership (account_id, audience_id, profile_id, since)
SELECT %s, u.a, u.p, %s FROM unnest(%s::bigint[], %s::bigint[]) AS u(a, p)
ON CONFLICT (audience_id, profile_id) DO NOTHING
RETURNING audience_id, profile_id
"""
_REMOVE = """
DELETE FROM audiences_audiencemembership m
USING unnest(%s::bigint[], %s::bigint[]) AS u(a, p)
WHERE m.audience_id = u.a AND m.profile_id = u.p
RETURNING m.audience_id, m.profile_id
"""
_RECORD = """
INSERT INTO audiences_membershipchange (account_id, audience_id, profile_id, kind, cause, at,
                                        raw_event_id)
SELECT %s, u.a, u.p, u.k, u.c, %s, u.r
FROM unnest(%s::bigint[], %s::bigint[], %s::text[], %s::text[], %s::bigint[])
     AS u(a, p, k, c, r)
"""
_RESIZE = """
UPDATE audiences_audience a SET size = a.size + u.d
FROM unnest(%s::bigint[], %s::bigint[]) AS u(id, d)
WHERE a.id = u.id AND a.size IS NOT NULL
"""
_MERGED_AWAY = """
DELETE FROM audiences_audiencemembership
WHERE profile_id = ANY(%s) AND account_id + 0 = %s
RETURNING audience_id, profile_id
"""


def _applied(cur: Any, statement: str, params: list[Any], wanted: list[Change]) -> list[Change]:
    """Run an _ADD or _REMOVE and keep the wanted changes whose row it really inserted or
    deleted."""
    if not wanted:
        return []
    cur.execute(statement, params)
    done = {(a, p) for a, p in cur.fetchall()}
    return [c for c in wanted if (c.audience_id, c.profile_id) in done]


def write_changes(account_id: int, changes: list[Change], now: datetime) -> list[Change]:
    """Memberships added and removed, the changes recorded, sizes moved: a few statements.
    Only what really changed is recorded: an entry whose row a concurrent computation (or
    another batch) inserted first, or an exit whose row is already gone, is no change.
    Returns the changes written."""
    if not changes:
        return []
    entries = [c for c in changes if c.kind == "entry"]
    exits = [c for c in changes if c.kind == "exit"]
    with db_cursor() as cur:
        changes = _applied(cur, _ADD, [account_id, now, [c.audience_id for c in entries],
                                       [c.profile_id for c in entries]], entries)
        changes += _applied(cur, _REMOVE, [[c.audience_id for c in exits],
                                           [c.profile_id for c in exits]], exits)
        if not changes:
            return []
        delta: dict[int, int] = defaultdict(int)
        for c in changes:
            delta[c.audience_id] += 1 if c.kind == "entry" else -1
        cur.execute(_RECORD, [account_id, now, [c.audience_id for c in changes],
                              [c.profile_id for c in changes], [c.kind for c in changes],
                              [c.cause for c in changes], [c.raw_event_id for c in changes]])
        ids = sorted(d for d, n in delta.items() if n)
        if ids:
            cur.execute(_RESIZE, [ids, [delta[i] for i in ids]])
    return changes


def _merged_away_exits(batch: Batch) -> list[Change]:
    gone = [pid for pid in batch.merged if pid not in batch.new_profiles]
    if not gone:
        return []
    with db_cursor() as cur:
        cur.execute(_MERGED_AWAY, [gone, batch.account_id])
        rows = cur.fetchall()
    return [Change(a, p, "exit", "merge", None) for a, p in rows]


def evaluate(batch: Batch) -> None:
    """The pipeline step (settings.STRATA_PIPELINE_STEPS)."""
    if batch.schema is None or not (batch.changed_profiles or batch.merged):
        return
    state = account_state(batch.account_id, {n: f.type for n, f in batch.schema.fields.items()},
                          batch.schema.version_id, batch.now)
    merge_exits = _merged_away_exits(batch)
    if merge_exits:
        _record_only(batch.account_id, merge_exits, batch.now)
    if not state.audiences:
        return
    aging = sorted(n for n, f in batch.schema.fields.items() if f.keep_days)
    changed, raw = _changed_keys(batch, aging)
    todo = sorted(pid for pid, keys in changed.items()
                  if keys is None or any(a.depends_on & keys for a in state.audiences))
    if not todo:
        return
    ctx = compile_context(batch.account_id, state.schema, batch.now,
                          {a.slug: a.id for a in state.audiences})
    loaded = _load(batch.account_id, todo, state, _needed_event_nodes(state, changed, todo), ctx)
    flips = evaluate_profiles(state, state.predicates(ctx), todo, changed, loaded)
    survivors = set(batch.merged.values())
    write_changes(batch.account_id, [
        Change(a, p, "entry" if now_in else "exit", "merge" if p in survivors else "realtime",
               raw.get(p)) for a, p, now_in in flips], batch.now)


def reevaluate(account_id: int, profile_ids: Collection[int], audience_ids: Collection[int],
               now: datetime, cause: str) -> dict[int, int]:
    """Evaluate these profiles (those that still exist and survive) against these audiences
    on their current data and membership, as the pipeline step would, and write what flips
    (entries and exits with ``cause``). Audience id -> how its size moved. A full
    computation calls it for the profiles a batch changed while it ran
    (``audiences.membership.compute_pass``)."""
    compiled = live_schema(account_id)
    if compiled is None or not profile_ids or not audience_ids:
        return {}
    state = account_state(account_id, {n: f.type for n, f in compiled.fields.items()},
                          compiled.version_id, now)
    with db_cursor() as cur:
        cur.execute("SELECT id FROM profiles_profile WHERE id = ANY(%s) "
                    "AND account_id + 0 = %s AND merged_into_id IS NULL ORDER BY id",
                    [sorted(profile_ids), account_id])
        todo = [row[0] for row in cur.fetchall()]
    if not todo:
        return {}
    ctx = compile_context(account_id, state.schema, now, {a.slug: a.id for a in state.audiences})
    predicates = state.predicates(ctx, only=set(audience_ids))
    nodes = [n for a in state.audiences if a.id in predicates for n in state.event_nodes[a.id]]
    loaded = _load(account_id, todo, state, nodes, ctx)
    flips = evaluate_profiles(state, predicates, todo, {pid: None for pid in todo}, loaded)
    written = write_changes(account_id, [Change(a, p, "entry" if now_in else "exit", cause,
                                                None) for a, p, now_in in flips], now)
    moved: dict[int, int] = defaultdict(int)
    for c in written:
        moved[c.audience_id] += 1 if c.kind == "entry" else -1
    return dict(moved)


def _record_only(account_id: int, changes: list[Change], now: datetime) -> None:
    """Record exits whose membership rows are already gone, and move sizes."""
    delta: dict[int, int] = defaultdict(int)
    for c in changes:
        delta[c.audience_id] -= 1
    with db_cursor() as cur:
        cur.execute(_RECORD, [account_id, now, [c.audience_id for c in changes],
                              [c.profile_id for c in changes], [c.kind for c in changes],
                              [c.cause for c in changes], [c.raw_event_id for c in changes]])
        ids = sorted(delta)
        cur.execute(_RESIZE, [ids, [delta[i] for i in ids]])


def _needed_event_nodes(state: AudienceState, changed: Mapping[int, set[str] | None],
                        todo: list[int]) -> list[dict[str, Any]]:
    """Event conditions of the audiences some profile will be evaluated against (an audience
    reached through an include is counted too: its dependencies are included)."""
    if any(changed.get(pid) is None for pid in todo):
        return [n for nodes in state.event_nodes.values() for n in nodes]
    keys: set[str] = set()
    for pid in todo:
        keys |= changed[pid] or set()
    wanted: set[int] = set()
    reached = set(keys)
    for audience in state.audiences:  # dependency order: includes come first
        if audience.depends_on & reached:
            wanted.add(audience.id)
            reached.add(f"audience:{audience.slug}")
    return [n for a in state.audiences if a.id in wanted for n in state.event_nodes[a.id]]


# ------------------------------------------------------------------------------ live values


def live_field_values(field_types: Mapping[str, str], values: Mapping[str, Any]
                      ) -> dict[str, Any]:
    """The values a site sent with a decision that are fields of the schema, typed as the
    field and stored as the pipeline stores them (``coerce``, then ``to_json``). A name that
    is not a field, and a value that does not fit its field's type or is no value (null, "",
    an empty list), are left out."""
    out: dict[str, Any] = {}
    for name, value in values.items():
        field_type = field_types.get(name)
        if field_type is None:
            continue
        try:
            typed = coerce(field_type, value)
            if typed is not None:
                out[name] = to_json(typed)
        except (FieldTypeError, MergeError):
            continue
    return out


def _reading(state: AudienceState, touched: set[str], slugs: Collection[str]
             ) -> list[CompiledAudience]:
    """The audiences of ``slugs`` whose rule reads one of ``touched``, directly or through an
    included audience, and those included audiences that do: in dependency order."""
    reads: set[str] = set()
    for a in state.audiences:  # dependency order: includes come first
        if a.depends_on & touched or any(
                d.startswith("audience:") and d[9:] in reads for d in a.depends_on):
            reads.add(a.slug)
    by_slug = {a.slug: a for a in state.audiences}
    needed: set[str] = set()
    stack = [slug for slug in slugs if slug in reads]
    while stack:
        slug = stack.pop()
        if slug in needed:
            continue
        needed.add(slug)
        stack.extend(d[9:] for d in by_slug[slug].depends_on
                     if d.startswith("audience:") and d[9:] in reads)
    return [a for a in state.audiences if a.slug in needed]


def live_memberships(account_id: int, profile_id: int | None, values: Mapping[str, Any],
                     slugs: Collection[str], now: datetime | None = None) -> dict[str, bool]:
    """Whether a visitor is in each audience of ``slugs`` for one decision made with live
    values (``values``: name -> value, as a site sends them with the request).

    The values that are fields of the live schema (``live_field_values``) overlay the
    profile's stored field values (none for a visitor without a profile), and each audience
    whose rule reads one of those fields, directly or through an included audience, is
    evaluated with the cached compiled predicate (``account_state``), its includes first.
    The answer names only those audiences: the others keep their stored membership.
    Nothing is written. Costs nothing past the schema lookup when no value is a field, and
    nothing past the cached state when no audience of ``slugs`` reads one."""
    compiled = live_schema(account_id)
    if compiled is None or not values:
        return {}
    types = {n: f.type for n, f in compiled.fields.items()}
    overlay = live_field_values(types, values)
    if not overlay:
        return {}
    now = now or timezone.now()
    state = account_state(account_id, types, compiled.version_id, now)
    touched = {f"field:{name}" for name in overlay}
    chosen = _reading(state, touched, slugs)
    if not chosen:
        return {}
    ctx = compile_context(account_id, state.schema, now, {a.slug: a.id for a in state.audiences})
    predicates = state.predicates(ctx, only={a.id for a in chosen})
    pid = profile_id if profile_id is not None else 0
    if profile_id is None:
        loaded = Loaded({}, defaultdict(set), defaultdict(set), defaultdict(dict), {})
    else:
        nodes = [n for a in chosen for n in state.event_nodes[a.id]]
        loaded = _load(account_id, [pid], state, nodes, ctx)
    loaded.field_values[pid] = {**loaded.field_values.get(pid, {}), **overlay}
    evaluate_profiles(state, predicates, [pid], {pid: touched}, loaded)
    members = loaded.memberships[pid]
    wanted = set(slugs)
    return {a.slug: a.slug in members for a in chosen
            if a.slug in wanted and a.id in predicates}
