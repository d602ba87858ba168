"""Calculated attributes (docs/calculated-attributes.md): windowed aggregates of a profile's
events, such as ``90_day_revenue`` (sum of ``revenue`` of ``Trip Booked`` events in the last
90 days).

An attribute reads the events a profile's timeline holds (``profiles_profileevent``): the
event name (the track event's name, or the message type: ``page``, ``identify``) and the
properties its mappings produced, by field name. "The last N days" are calendar days in UTC:
today and the N - 1 days before it, so an event stops counting at midnight UTC N days after
its own day.

Each value keeps a compact ``state``: one bucket per day (a count, a sum, a minimum, value
counts... whatever its aggregate needs) and the revision of the definition it was computed
under. Three things write values, all in bulk:

- ``compute(batch)``, a pipeline step: the batch's events are folded into the buckets of
  their profiles (one query loads the states, one upsert writes them); merged-away profiles'
  states are folded into their survivors;
- ``correct_expired(account_id)``, every 15 minutes: values whose oldest bucket left the
  window (``expires_at`` passed) are recomputed from their state;
- ``backfill(attribute_id, revision)``, in the background (django-q2) after an attribute is
  created or its definition changes: every value recomputed from the profile events, a
  chunk of profiles at a time, with ``status`` and ``progress`` on the attribute.

A profile with no matching event in the window has no value (no row).
"""

from __future__ import annotations

import json
import logging
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import orjson
from django.db import OperationalError, connection, transaction
from django.utils import timezone

from cdp_site import audit
from cdp_site.models import AuditEvent
from profiles.conditions import ConditionError, Matcher, compile_where, validate_where
from profiles.models import AttributeValue, CalculatedAttribute, Field, Profile
from profiles.schema.merge import canonical, stamp

if TYPE_CHECKING:
    from cdp_site.models import Account
    from cdp_site.tenancy import Actor
    from profiles.processing.batch import Batch, PipelineEvent

log = logging.getLogger(__name__)

__all__ = [
    "AGGREGATES",
    "AttributeDefinitionError",
    "attribute_types",
    "backfill",
    "compute",
    "correct_expired",
    "delete_attribute",
    "profile_attributes",
    "save_attribute",
]

MAX_WINDOW_DAYS = 3650
MAX_KEYS_PER_DAY = 1000  # distinct / most frequent: values kept per day bucket
BACKFILL_CHUNK = 500
CORRECTION_CHUNK = 1000

Bucket = Any
State = dict[str, Any]  # {"r": revision, "d": {"2026-11-23": bucket}}


# --------------------------------------------------------------------------- aggregates


def _decimal(value: Any) -> Decimal:
    return Decimal(repr(value)) if isinstance(value, float) else Decimal(value)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _number(value: Decimal) -> int | float:
    """A JSON number: whole values as integers."""
    if value == value.to_integral_value() and abs(value) < 2**63:
        return int(value)
    return float(value)


def _add_counts(a: dict[str, int], b: dict[str, int]) -> dict[str, int]:
    out = dict(a)
    for key, n in b.items():
        out[key] = out.get(key, 0) + n
    if len(out) > MAX_KEYS_PER_DAY:  # keep the most frequent (ties: the smallest key)
        kept = sorted(out.items(), key=lambda kv: (-kv[1], kv[0]))[:MAX_KEYS_PER_DAY]
        out = dict(kept)
    return out


def _total_counts(buckets: Iterable[dict[str, int]]) -> dict[str, int]:
    total: dict[str, int] = defaultdict(int)
    for bucket in buckets:
        for key, n in bucket.items():
            total[key] += n
    return total


def _most_frequent(buckets: list[dict[str, int]]) -> str | None:
    total = _total_counts(buckets)
    if not total:
        return None
    key = min(total, key=lambda k: (-total[k], k))
    value = json.loads(key)
    return value if isinstance(value, str) else key


def _sum(buckets: list[list[Any]]) -> Decimal:
    return sum((Decimal(b[1]) for b in buckets), Decimal(0))


def _numeric_cell(value: Any, at: datetime) -> Bucket:
    return [1, str(_decimal(value))] if _is_number(value) else None


def _key_cell(value: Any, at: datetime) -> Bucket:
    return None if value is None else {canonical(value): 1}


@dataclass(frozen=True)
class Aggregate:
    """One aggregate: ``cell`` is one event's bucket (None: the event does not count),
    ``combine`` folds two buckets of a day, ``result`` the value of the window's buckets."""

    needs_property: bool
    cell: Callable[[Any, datetime], Bucket]
    combine: Callable[[Bucket, Bucket], Bucket]
    result: Callable[[list[Bucket]], Any]


def _pick(better: Callable[[Decimal, Decimal], bool]) -> Callable[[Any, Any], Any]:
    return lambda a, b: a if better(_decimal(a), _decimal(b)) else b


AGGREGATES: dict[str, Aggregate] = {
    "count": Aggregate(False, lambda v, at: 1, lambda a, b: a + b, sum),
    "sum": Aggregate(True, _numeric_cell, lambda a, b: [a[0] + b[0], str(Decimal(a[1])
                     + Decimal(b[1]))], lambda bs: _number(_sum(bs))),
    "avg": Aggregate(True, _numeric_cell, lambda a, b: [a[0] + b[0], str(Decimal(a[1])
                     + Decimal(b[1]))],
                     lambda bs: float(_sum(bs) / sum(b[0] for b in bs))),
    "min": Aggregate(True, lambda v, at: v if _is_number(v) else None,
                     _pick(lambda a, b: a <= b),
                     lambda bs: min(bs, key=_decimal)),
    "max": Aggregate(True, lambda v, at: v if _is_number(v) else None,
                     _pick(lambda a, b: a >= b),
                     lambda bs: max(bs, key=_decimal)),
    "distinct": Aggregate(True, _key_cell, _add_counts, lambda bs: len(_total_counts(bs))),
    "most_frequent": Aggregate(True, _key_cell, _add_counts, _most_frequent),
    "first": Aggregate(False, lambda v, at: stamp(at), min, min),
    "last": Aggregate(False, lambda v, at: stamp(at), max, max),
}
assert set(AGGREGATES) == set(CalculatedAttribute.Aggregate.values)


# --------------------------------------------------------------------------- definitions


@dataclass(frozen=True)
class Definition:
    id: int
    name: str
    aggregate: Aggregate
    event: str
    property: str
    window_days: int
    revision: int
    matches: Matcher

    @classmethod
    def of(cls, attr: CalculatedAttribute) -> Definition:
        return cls(attr.pk, attr.name, AGGREGATES[attr.aggregate], attr.event, attr.property,
                   attr.window_days, attr.revision, compile_where(attr.where or []))

    def first_day(self, now: datetime) -> date:
        """The oldest day still in the window at ``now``."""
        return _day(now) - timedelta(days=self.window_days - 1)

    def cell(self, properties: Mapping[str, Any], at: datetime) -> Bucket:
        if not self.matches(properties):
            return None
        return self.aggregate.cell(properties.get(self.property) if self.property else None,
                                   at)


def _day(at: datetime) -> date:
    return at.astimezone(UTC).date()


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def _definitions(account_id: int) -> list[Definition]:
    return [Definition.of(a) for a in CalculatedAttribute.objects.filter(
        account_id=account_id, active=True)]


# --------------------------------------------------------------------------- state


def _fold_days(agg: Aggregate, into: dict[str, Bucket], days: Mapping[str, Bucket]) -> None:
    for day, bucket in days.items():
        have = into.get(day)
        into[day] = bucket if have is None else agg.combine(have, bucket)


def _evaluate(defn: Definition, state: State, now: datetime
              ) -> tuple[State, Any, datetime] | None:
    """The state without the days that left the window, its value and when its oldest day
    leaves; None when nothing is left."""
    first = defn.first_day(now).isoformat()
    days = {d: b for d, b in state.get("d", {}).items() if d >= first}
    if not days:
        return None
    oldest = date.fromisoformat(min(days))
    value = defn.aggregate.result([days[d] for d in sorted(days)])
    if value is None:
        return None
    return ({"r": defn.revision, "d": days}, value,
            _midnight(oldest + timedelta(days=defn.window_days)))


def _loads(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str | bytes) else value


def _rows_json(rows: list[dict[str, Any]]) -> str:
    return orjson.dumps(rows, default=str).decode()


_UPSERT = """
INSERT INTO profiles_attributevalue (account_id, attribute_id, profile_id, name, value, state,
    updated_at, expires_at)
SELECT %(account)s, u.a, u.p, u.n, u.v, u.s, %(now)s, u.x
FROM json_to_recordset(%(rows)s::json) AS u(a bigint, p bigint, n text, v jsonb, s jsonb,
                                             x timestamptz)
ON CONFLICT (attribute_id, profile_id) DO UPDATE SET name = EXCLUDED.name,
    value = EXCLUDED.value, state = EXCLUDED.state, updated_at = EXCLUDED.updated_at,
    expires_at = EXCLUDED.expires_at
"""
_DELETE_PAIRS = """
DELETE FROM profiles_attributevalue v
USING unnest(%(attrs)s::bigint[], %(profiles)s::bigint[]) AS u(a, p)
WHERE v.attribute_id = u.a AND v.profile_id = u.p AND v.account_id = %(account)s
"""


def _write(cursor: Any, account_id: int, now: datetime, rows: list[dict[str, Any]],
           gone: list[tuple[int, int]]) -> None:
    if rows:
        cursor.execute(_UPSERT, {"account": account_id, "now": now, "rows": _rows_json(rows)})
    if gone:
        cursor.execute(_DELETE_PAIRS, {"account": account_id, "attrs": [a for a, _ in gone],
                                       "profiles": [p for _, p in gone]})


def _row(defn: Definition, profile_id: int, evaluated: tuple[State, Any, datetime]
         ) -> dict[str, Any]:
    state, value, expires = evaluated
    return {"a": defn.id, "p": profile_id, "n": defn.name, "v": value, "s": state,
            "x": expires}


# --------------------------------------------------------------------------- pipeline step


def event_name(ev: PipelineEvent) -> str:
    """The name its profile event gets (profiles.processing.steps.merge): the event, or the
    type."""
    return (ev.event or ev.type)[:200]


def event_properties(ev: PipelineEvent) -> dict[str, Any]:
    """The properties its profile event gets: the mapped values the merge step kept (a value
    whose merge failed is not stored)."""
    failed = {name for code, name, _m in getattr(ev, "warnings", ()) if code == "merge_error"}
    return {name: value for name, value in ev.values if name not in failed}


_LOAD_STATES = """
SELECT attribute_id, profile_id, value, state FROM profiles_attributevalue
WHERE account_id = %(account)s AND profile_id = ANY(%(profiles)s::bigint[])
"""


def _contributions(batch: Batch, defs: list[Definition]
                   ) -> dict[tuple[int, int], dict[str, Bucket]]:
    """(attribute, profile) -> the batch's buckets by day."""
    by_event: dict[str, list[Definition]] = defaultdict(list)
    for defn in defs:
        by_event[defn.event].append(defn)
    firsts = {d.id: d.first_day(batch.now).isoformat() for d in defs}
    out: dict[tuple[int, int], dict[str, Bucket]] = {}
    for ev in batch.live:
        if ev.profile_id is None:
            continue
        wanted = by_event.get(event_name(ev))
        if not wanted:
            continue
        day = _day(ev.at).isoformat()
        properties = event_properties(ev)
        for defn in wanted:
            if day < firsts[defn.id]:
                continue
            cell = defn.cell(properties, ev.at)
            if cell is None:
                continue
            days = out.setdefault((defn.id, ev.profile_id), {})
            _fold_days(defn.aggregate, days, {day: cell})
    return out


def compute(batch: Batch) -> None:
    """Pipeline step: fold the batch's events into their profiles' attribute values, and
    merged-away profiles' values into their survivors. Sets ``batch.changed_attributes`` =
    {profile id: names whose value changed}."""
    merged = batch.merged
    if not batch.live and not merged:
        return
    defs = _definitions(batch.account_id)
    if not defs:
        if merged:
            _drop_profiles(batch.account_id, list(merged))
        return
    added = _contributions(batch, defs)
    if not added and not merged:
        return
    by_id = {d.id: d for d in defs}
    profiles = {p for _a, p in added} | set(merged) | set(merged.values())
    states: dict[tuple[int, int], State] = {}
    old_values: dict[tuple[int, int], Any] = {}
    with connection.cursor() as cursor:
        cursor.execute(_LOAD_STATES, {"account": batch.account_id,
                                      "profiles": sorted(profiles)})
        for attr_id, pid, value, state in cursor.fetchall():
            old_values[(attr_id, pid)] = _loads(value)
            state = _loads(state) or {}
            defn = by_id.get(attr_id)
            if defn is not None and state.get("r") == defn.revision:
                states[(attr_id, pid)] = state
        for gone, keep in merged.items():
            for defn in defs:
                moved = states.pop((defn.id, gone), None)
                if moved:
                    into = states.setdefault((defn.id, keep), {"r": defn.revision, "d": {}})
                    _fold_days(defn.aggregate, into["d"], moved["d"])
        for key, days in added.items():
            into = states.setdefault(key, {"r": by_id[key[0]].revision, "d": {}})
            _fold_days(by_id[key[0]].aggregate, into["d"], days)
        # States of active attributes under their current revision (values of inactive
        # attributes, or computed under an older revision, stay for the backfill to replace).
        rows, dropped, changed = [], [], defaultdict(set)
        for key in sorted(states):
            attr_id, pid = key
            defn = by_id[attr_id]
            evaluated = _evaluate(defn, states[key], batch.now)
            if evaluated is None:
                if key in old_values:
                    dropped.append(key)
                    changed[pid].add(defn.name)
                continue
            rows.append(_row(defn, pid, evaluated))
            if old_values.get(key, _MISSING) != evaluated[1]:
                changed[pid].add(defn.name)
        dropped += [k for k in old_values if k[1] in merged]
        _write(cursor, batch.account_id, batch.now, rows, dropped)
    batch.changed_attributes = dict(changed)


_MISSING = object()


def _drop_profiles(account_id: int, profile_ids: list[int]) -> None:
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM profiles_attributevalue WHERE account_id = %s "
                       "AND profile_id = ANY(%s::bigint[])", [account_id, profile_ids])


# --------------------------------------------------------------------------- correction

_EXPIRED = """
SELECT attribute_id, profile_id, value, state FROM profiles_attributevalue
WHERE account_id = %(account)s AND expires_at <= %(now)s
ORDER BY expires_at LIMIT %(limit)s
FOR UPDATE SKIP LOCKED
"""


def correct_expired(account_id: int, *, now: datetime | None = None,
                    chunk: int = CORRECTION_CHUNK) -> dict[int, set[str]]:
    """Recompute the values whose oldest day left the window (``expires_at`` passed), a chunk
    at a time (one select, one upsert, one delete each); values a batch holds are skipped
    (that batch recomputes them). Returns {profile id: names whose value changed}."""
    now = now or timezone.now()
    attrs = {a.pk: a for a in CalculatedAttribute.objects.filter(account_id=account_id)}
    defs = {pk: Definition.of(a) for pk, a in attrs.items()}
    changed: dict[int, set[str]] = defaultdict(set)
    while True:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(_EXPIRED, {"account": account_id, "now": now, "limit": chunk})
            found = cursor.fetchall()
            if not found:
                break
            rows, dropped = [], []
            for attr_id, pid, value, state in found:
                defn = defs.get(attr_id)
                if defn is None:  # the attribute was deleted meanwhile
                    dropped.append((attr_id, pid))
                    continue
                state = _loads(state) or {}
                evaluated = _evaluate(defn, state, now)
                if evaluated is None:
                    dropped.append((attr_id, pid))
                    changed[pid].add(defn.name)
                    continue
                evaluated[0]["r"] = state.get("r")  # a stale revision stays stale
                rows.append(_row(defn, pid, evaluated))
                if _loads(value) != evaluated[1]:
                    changed[pid].add(defn.name)
            _write(cursor, account_id, now, rows, dropped)
    CalculatedAttribute.objects.filter(account_id=account_id, active=True).update(
        computed_at=now)
    return dict(changed)


def correct_all(*, now: datetime | None = None) -> int:
    """The scheduled correction over every account with calculated attributes; how many
    values changed."""
    accounts = CalculatedAttribute.objects.values_list("account_id", flat=True).distinct()
    return sum(len(names) for account in sorted(set(accounts))
               for names in correct_expired(account, now=now).values())


# --------------------------------------------------------------------------- backfill

_PROFILES_WITH_EVENTS = """
SELECT DISTINCT profile_id FROM profiles_profileevent
WHERE account_id = %(account)s AND event = %(event)s AND at >= %(since)s
ORDER BY profile_id
"""
_LOCK_PROFILES = """
SELECT id FROM profiles_profile
WHERE account_id = %(account)s AND id = ANY(%(ids)s::bigint[]) AND merged_into_id IS NULL
ORDER BY id FOR NO KEY UPDATE
"""
_PROFILE_EVENTS = """
SELECT profile_id, at, properties FROM profiles_profileevent
WHERE account_id = %(account)s AND event = %(event)s AND at >= %(since)s
    AND profile_id = ANY(%(ids)s::bigint[])
"""
_DROP_STALE = """
DELETE FROM profiles_attributevalue
WHERE account_id = %(account)s AND attribute_id = %(attr)s
    AND (state ->> 'r') IS DISTINCT FROM %(revision)s
"""


class _Superseded(Exception):
    """The definition changed (or the attribute went) while the backfill ran."""


def _current(attribute_id: int, revision: int, lock: bool = False) -> CalculatedAttribute:
    rows = CalculatedAttribute.objects.filter(pk=attribute_id, revision=revision, active=True)
    attr = (rows.select_for_update() if lock else rows).first()
    if attr is None:
        raise _Superseded
    return attr


def backfill(attribute_id: int, revision: int, *, now: datetime | None = None,
             chunk: int = BACKFILL_CHUNK) -> str:
    """Recompute every value of the attribute from profile events (the background job a new
    or changed definition starts). Each chunk of profiles is one transaction that locks the
    profiles first, as processing does, so a batch in flight either ends before the chunk
    reads the events or waits for the chunk and then adds its events to the fresh state.
    Returns the final status ("ready", "failed", or "superseded" when the definition changed
    meanwhile: the newer backfill takes over)."""
    try:
        attr = _current(attribute_id, revision)
    except _Superseded:
        return "superseded"
    now = now or timezone.now()
    defn = Definition.of(attr)
    since = _midnight(defn.first_day(now))
    params: dict[str, Any] = {"account": attr.account_id, "event": attr.event, "since": since}
    _set_status(attr, CalculatedAttribute.Status.BACKFILLING, progress=0.0, error="",
                backfill_started_at=timezone.now(), backfill_finished_at=None)
    try:
        with connection.cursor() as cursor:
            cursor.execute(_PROFILES_WITH_EVENTS, params)
            ids = [row[0] for row in cursor.fetchall()]
        for start in range(0, len(ids), chunk):
            _backfill_chunk(defn, params, ids[start:start + chunk], now)
            progress = min(1.0, (start + chunk) / len(ids))
            CalculatedAttribute.objects.filter(pk=attribute_id, revision=revision).update(
                progress=progress)
        with transaction.atomic():
            attr = _current(attribute_id, revision, lock=True)
            with connection.cursor() as cursor:
                cursor.execute(_DROP_STALE, {"account": attr.account_id, "attr": attr.pk,
                                             "revision": str(revision)})
            _set_status(attr, CalculatedAttribute.Status.READY, progress=1.0,
                        backfill_finished_at=timezone.now(), computed_at=now)
    except _Superseded:
        return "superseded"
    except Exception as exc:
        log.exception("backfill of calculated attribute %s failed", attribute_id)
        CalculatedAttribute.objects.filter(pk=attribute_id, revision=revision).update(
            status=CalculatedAttribute.Status.FAILED, error=f"{type(exc).__name__}: {exc}"[:2000],
            backfill_finished_at=timezone.now())
        return "failed"
    return "ready"


def _set_status(attr: CalculatedAttribute, status: str, **fields: Any) -> None:
    CalculatedAttribute.objects.filter(pk=attr.pk, revision=attr.revision).update(
        status=status, **fields)


def _backfill_chunk(defn: Definition, params: dict[str, Any], ids: list[int],
                    now: datetime, attempts: int = 3) -> None:
    for attempt in range(attempts):
        try:
            with transaction.atomic():
                _current(defn.id, defn.revision)
                _recompute_profiles(defn, params, ids, now)
            return
        except OperationalError:  # a deadlock with a batch: that batch went on; again
            if attempt == attempts - 1:
                raise


def _recompute_profiles(defn: Definition, params: dict[str, Any], ids: list[int],
                        now: datetime) -> None:
    with connection.cursor() as cursor:
        cursor.execute(_LOCK_PROFILES, {**params, "ids": ids})
        live = [row[0] for row in cursor.fetchall()]
        states: dict[int, State] = {}
        cursor.execute(_PROFILE_EVENTS, {**params, "ids": live})
        for pid, at, properties in cursor.fetchall():
            cell = defn.cell(_loads(properties) or {}, at)
            if cell is not None:
                state = states.setdefault(pid, {"r": defn.revision, "d": {}})
                _fold_days(defn.aggregate, state["d"], {_day(at).isoformat(): cell})
        rows, dropped = [], []
        for pid in live:
            evaluated = _evaluate(defn, states[pid], now) if pid in states else None
            if evaluated is None:
                dropped.append((defn.id, pid))
            else:
                rows.append(_row(defn, pid, evaluated))
        _write(cursor, params["account"], now, rows, dropped)


def start_backfill(attr: CalculatedAttribute) -> None:
    """Queue the backfill of the attribute's current revision once the transaction commits."""
    from django_q.tasks import async_task

    attribute_id, revision = attr.pk, attr.revision
    transaction.on_commit(lambda: async_task(
        "profiles.tasks.backfill_calculated_attribute", attribute_id, revision,
        task_name=f"calculated-attribute-{attribute_id}-r{revision}"))


# --------------------------------------------------------------------------- definitions API


class AttributeDefinitionError(ValueError):
    """A definition refused: ``code``, ``message`` and the ``attr`` concerned."""

    def __init__(self, code: str, message: str, attr: str = "") -> None:
        super().__init__(message)
        self.code, self.message, self.attr = code, message, attr


NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_-]{0,99}$")
DEFINITION_KEYS = ("aggregate", "event", "where", "property", "window_days")
EDITABLE = ("name", "description", "active", *DEFINITION_KEYS)


def _whole(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def _check_name(account: Account, name: Any, instance: CalculatedAttribute | None) -> str:
    if not isinstance(name, str) or not NAME.match(name.strip()):
        raise AttributeDefinitionError(
            "bad_name", "name takes 1 to 100 letters, digits, _ or - (e.g. 90_day_revenue).",
            "name")
    name = name.strip()
    others = CalculatedAttribute.objects.filter(account=account, name=name)
    if instance is not None:
        others = others.exclude(pk=instance.pk)
    if others.exists():
        raise AttributeDefinitionError(
            "duplicate_name", f"A calculated attribute named {name!r} already exists.", "name")
    if Field.objects.filter(account=account, name=name).exists():
        raise AttributeDefinitionError(
            "name_taken_by_field", f"{name!r} is a profile field of the schema; audience rules "
            "could not tell them apart. Choose another name.", "name")
    return name


def _check_definition(data: dict[str, Any]) -> dict[str, Any]:
    aggregate = data.get("aggregate")
    if aggregate not in AGGREGATES:
        raise AttributeDefinitionError(
            "unknown_aggregate", f"Unknown aggregate {aggregate!r}; use one of "
            + ", ".join(AGGREGATES) + ".", "aggregate")
    event = data.get("event")
    if not isinstance(event, str) or not event.strip() or len(event) > 200:
        raise AttributeDefinitionError(
            "bad_event", "event takes the event name (1 to 200 characters; page views are "
            "'page').", "event")
    window = _whole(data.get("window_days"))
    if window is None or not 1 <= window <= MAX_WINDOW_DAYS:
        raise AttributeDefinitionError(
            "bad_window", f"window_days takes a whole number of days from 1 to "
            f"{MAX_WINDOW_DAYS}.", "window_days")
    prop = data.get("property") or ""
    if not isinstance(prop, str) or len(prop) > 200:
        raise AttributeDefinitionError("bad_property", "property takes a property name.",
                                       "property")
    prop = prop.strip()
    if AGGREGATES[aggregate].needs_property and not prop:
        raise AttributeDefinitionError(
            "missing_property", f"{aggregate} needs the property it aggregates.", "property")
    if not AGGREGATES[aggregate].needs_property and prop:
        raise AttributeDefinitionError(
            "unexpected_property", f"{aggregate} reads no property; leave property empty.",
            "property")
    where = data.get("where") if data.get("where") is not None else []
    try:
        validate_where(where)
    except ConditionError as exc:
        raise AttributeDefinitionError(exc.code, f"{exc.path}: {exc.message}", "where"
                                       ) from None
    return {"aggregate": aggregate, "event": event.strip(), "window_days": window,
            "property": prop, "where": where}


AUDITED = ("name", "description", "active", *DEFINITION_KEYS)


@transaction.atomic
def save_attribute(account: Account, data: dict[str, Any], *,
                   instance: CalculatedAttribute | None = None, user: Any = None,
                   actor: Actor | None = None) -> CalculatedAttribute:
    """Create (``instance`` None) or change a calculated attribute from ``data`` (a partial
    change keeps what it leaves out). A new definition, a changed one, or one made active
    again is backfilled in the background. Raises AttributeDefinitionError. With an
    ``actor`` (its user is the creator) the change is written to the audit log."""
    if user is None and actor is not None:
        user = actor.user
    after = _checked(account, data, instance)
    if instance is None:
        return _create_attribute(account, after, user, actor)
    _change_attribute(instance, after, actor)
    return instance


def _checked(account: Account, data: dict[str, Any], instance: CalculatedAttribute | None
             ) -> dict[str, Any]:
    """``data`` over what ``instance`` holds, checked: the attribute's name, description,
    active and definition as they are to be saved. Raises AttributeDefinitionError."""
    unknown = set(data) - set(EDITABLE)
    if unknown:
        raise AttributeDefinitionError("unknown_key", f"Unknown key(s): {sorted(unknown)}; "
                                       "editable: " + ", ".join(EDITABLE) + ".")
    current = {k: getattr(instance, k) for k in EDITABLE} if instance is not None else {}
    merged = {**current, **data}
    name = _check_name(account, merged.get("name"), instance)
    definition = _check_definition(merged)
    description = merged.get("description") or ""
    if not isinstance(description, str) or len(description) > 500:
        raise AttributeDefinitionError("bad_description", "description takes up to 500 "
                                       "characters.", "description")
    active = merged.get("active", True)
    if not isinstance(active, bool):
        raise AttributeDefinitionError("bad_active", "active takes true or false.", "active")
    return {"name": name, "description": description, "active": active, **definition}


def _create_attribute(account: Account, after: dict[str, Any], user: Any,
                      actor: Actor | None) -> CalculatedAttribute:
    """A new attribute, audited, and backfilled when active."""
    now = timezone.now()
    instance = CalculatedAttribute.objects.create(
        account=account, created_by=user if getattr(user, "pk", None) else None,
        created_at=now, updated_at=now, **after)
    audit.record_change(actor, AuditEvent.Action.CALCULATED_ATTRIBUTE_CREATED, instance,
                        {key: getattr(instance, key) for key in AUDITED})
    if after["active"]:
        start_backfill(instance)
    return instance


def _change_attribute(instance: CalculatedAttribute, after: dict[str, Any],
                      actor: Actor | None) -> None:
    """``after`` saved over the attribute. A changed definition, or an attribute made active
    again, starts a new revision (its values are computed again by a backfill); a rename
    renames its values; what changed is audited (a save that changed nothing is not)."""
    redo = any(after[k] != getattr(instance, k) for k in DEFINITION_KEYS) \
        or (after["active"] and not instance.active)
    renamed = after["name"] != instance.name
    diff = {key: [getattr(instance, key), after[key]] for key in AUDITED
            if getattr(instance, key) != after[key]}
    for key, value in after.items():
        setattr(instance, key, value)
    instance.updated_at = timezone.now()
    if redo:
        instance.revision += 1
        instance.status, instance.progress, instance.error = "pending", 0.0, ""
    instance.save()
    if renamed:
        AttributeValue.objects.filter(attribute=instance).update(name=after["name"])
    if diff:
        audit.record_change(actor, AuditEvent.Action.CALCULATED_ATTRIBUTE_UPDATED, instance, diff)
    if redo and after["active"]:
        start_backfill(instance)


def delete_attribute(attr: CalculatedAttribute, actor: Actor | None = None) -> None:
    """The attribute and its values (set-based)."""
    with transaction.atomic():
        audit.record_change(actor, AuditEvent.Action.CALCULATED_ATTRIBUTE_DELETED, attr,
                            {"name": attr.name, "aggregate": attr.aggregate, "event": attr.event})
        values = AttributeValue.objects.filter(attribute=attr)
        values._raw_delete(values.db)
        attr.delete()


# --------------------------------------------------------------------------- readers


def profile_attributes(account_id: int, profile_id: int) -> dict[str, Any]:
    """The profile's values of the account's active calculated attributes, by name (a
    profile with no matching event in an attribute's window has no value for it)."""
    rows = AttributeValue.objects.filter(
        account_id=account_id, profile_id=profile_id, attribute__active=True
    ).order_by("name").values_list("name", "value")
    return dict(rows)


def attribute_types(account_id: int) -> dict[str, str]:
    """Active calculated attributes and the field type of their values (for rule schemas)."""
    return {a.name: a.value_type() for a in CalculatedAttribute.objects.filter(
        account_id=account_id, active=True).only("name", "aggregate")}


def profile_attribute_rows(account_id: int, profile: Profile) -> list[dict[str, Any]]:
    """What the profile page shows: every active attribute with the profile's value (None:
    no matching event in the window) and its definition."""
    values = {v.attribute_id: v for v in AttributeValue.objects.filter(
        account_id=account_id, profile=profile)}
    out = []
    for attr in CalculatedAttribute.objects.filter(account_id=account_id, active=True):
        value = values.get(attr.pk)
        out.append({"name": attr.name, "value": value.value if value else None,
                    "type": attr.value_type(), "aggregate": attr.get_aggregate_display(),
                    "aggregate_code": attr.aggregate,
                    "event": attr.event, "property": attr.property,
                    "window_days": attr.window_days, "status": attr.status,
                    "updated_at": value.updated_at if value else None})
    return out
