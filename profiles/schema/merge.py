"""Merge operators and field types: how many events' values fold into one profile field.

Issue 4, item 1. Each operator keeps a JSON state holding the values with their event
timestamps, so that two profiles merge without replaying their events, and so that the
result depends only on which events happened, not on the order they arrive in:

* ``add(state, value, at, capacity)`` is ``merge(state, single(value, at), capacity)``;
* ``merge`` is commutative and associative (tests/profiles/test_merge.py proves it with
  hypothesis), so any arrival order and any split into profiles gives the same state;
* ``value(state, now, keep_days)`` is the public value; values older than ``keep_days``
  stop counting (``None`` or 0 keeps them forever).

Ties: when two values carry the same timestamp, the one whose canonical JSON sorts last
is the latest (and first is the oldest), so the winner never depends on arrival order.

States and values are plain JSON. Dates travel as fixed-width ISO-8601 UTC strings
(``2024-05-01T12:00:00.000000Z``) so they sort as text. Nothing here touches the database.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

from profiles.schema.expressions import ExpressionError, to_date

__all__ = [
    "FIELD_TYPES",
    "OPERATORS",
    "FieldTypeError",
    "MergeError",
    "MergeOperator",
    "coerce",
    "get_operator",
    "operator_fits",
    "stamp",
]

State = Any  # a JSON object (dict) or None for "nothing seen yet"

DAY_BUCKETS = 731  # day-granular operators are exact for keep_days up to two years
DEFAULT_SET_CAPACITY = 1000
DEFAULT_CAPPED_CAPACITY = 10
DEFAULT_MAP_CAPACITY = 1000

FIELD_TYPES = (
    "string", "int", "number", "bool", "date", "[]string",
    "map[string]int", "map[string]number", "map[string]string", "map[string]date",
)
_SCALAR_TYPES = ("string", "int", "number", "bool", "date")
_MAP_TYPES = tuple(t for t in FIELD_TYPES if t.startswith("map["))


class MergeError(ValueError):
    """A value or state an operator cannot fold (wrong shape for the operator)."""


class FieldTypeError(ValueError):
    """A mapped value that does not fit its field's type; the pipeline skips that mapping."""


# --------------------------------------------------------------------------- helpers


def stamp(at: datetime) -> str:
    """A timestamp as fixed-width UTC text that sorts like the time it names."""
    if not isinstance(at, datetime):
        raise MergeError(f"an event time must be a datetime, got {type(at).__name__}")
    utc = at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
    return utc.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def canonical(value: Any) -> str:
    """The JSON text that breaks ties between values deterministically."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def to_json(value: Any) -> Any:
    """A coerced value as JSON: dates become stamps, tuples lists."""
    if isinstance(value, datetime):
        return stamp(value)
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_json(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        raise MergeError(f"{value} is not a number that can be stored")
    return value


def order_key(value: Any) -> tuple[int, Any, str]:
    """A total order over JSON values for min/max: numbers, then strings, then the rest."""
    if isinstance(value, bool):
        return (2, int(value), canonical(value))
    if isinstance(value, int | float):
        return (0, value, canonical(value))
    if isinstance(value, str):
        return (1, value, "")
    return (3, canonical(value), "")


def _cutoff(now: datetime | None, keep_days: int | None) -> str | None:
    """The stamp before which values stop counting, or None to count everything."""
    if not keep_days:
        return None
    current = datetime.now(UTC) if now is None else now
    return stamp(current - timedelta(days=keep_days))


def _later(a: list[Any], b: list[Any]) -> list[Any]:
    """Of two [stamp, value] cells, the later; equal stamps: the larger canonical value."""
    return a if (a[0], canonical(a[1])) >= (b[0], canonical(b[1])) else b


def _earlier(a: list[Any], b: list[Any]) -> list[Any]:
    return a if (a[0], canonical(a[1])) <= (b[0], canonical(b[1])) else b


def _number(value: Any, operator: str) -> int | float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise MergeError(f"{operator} needs numbers, got {value!r}")
    if not math.isfinite(value):
        raise MergeError(f"{operator} cannot store {value}")
    return value


# --------------------------------------------------------------------------- registry

OPERATORS: dict[str, MergeOperator] = {}


def register(cls: type[MergeOperator]) -> type[MergeOperator]:
    OPERATORS[cls.name] = cls()
    return cls


def get_operator(name: str) -> MergeOperator:
    try:
        return OPERATORS[name]
    except KeyError:
        raise MergeError(
            f"unknown merge operator {name!r}; use one of {', '.join(sorted(OPERATORS))}"
        ) from None


def operator_fits(name: str, field_type: str) -> bool:
    """Whether a field of this type may use this operator (checked when a field is saved)."""
    return field_type in get_operator(name).fits


class MergeOperator:
    """One merge operator. Subclasses define ``single`` and ``merge``; ``add`` follows."""

    name: ClassVar[str]
    fits: ClassVar[frozenset[str]]
    doc: ClassVar[str]

    def single(self, value: Any, at: datetime) -> State:
        """The state of a profile that has seen just this one event."""
        raise NotImplementedError

    def merge(self, a: State, b: State, capacity: int | None = None) -> State:
        """Two states as one; commutative and associative; never modifies a or b."""
        raise NotImplementedError

    def value(self, state: State, now: datetime | None = None,
              keep_days: int | None = None) -> Any:
        """The public value of the field: None when nothing (still) counts."""
        raise NotImplementedError

    def add(self, state: State, value: Any, at: datetime, capacity: int | None = None) -> State:
        """Fold one event's value into a state (a new state; the old one is not modified)."""
        if value is None:
            return self.merge(state, None, capacity)
        return self.merge(state, self.single(to_json(value), at), capacity)


# --------------------------------------------------------------------------- latest


class _Latest(MergeOperator):
    """Shared by latest and latestmap: one [stamp, value] cell, the newest wins."""

    def single(self, value: Any, at: datetime) -> State:
        self._check(value)
        return {"at": stamp(at), "value": value}

    def _check(self, value: Any) -> None:
        return None

    def merge(self, a: State, b: State, capacity: int | None = None) -> State:
        if a is None or b is None:
            return None if a is None and b is None else dict(a if b is None else b)
        winner = _later([a["at"], a["value"]], [b["at"], b["value"]])
        return {"at": winner[0], "value": winner[1]}

    def value(self, state: State, now: datetime | None = None,
              keep_days: int | None = None) -> Any:
        if state is None:
            return None
        cutoff = _cutoff(now, keep_days)
        if cutoff is not None and state["at"] < cutoff:
            return None
        return state["value"]


@register
class Latest(_Latest):
    """The value of the event with the latest timestamp."""

    name = "latest"
    fits = frozenset(FIELD_TYPES)
    doc = "the value of the most recent event (by the event's own timestamp)"


@register
class LatestMap(_Latest):
    """A whole map from the latest event: keys it lacks are gone (a cart, a preference set)."""

    name = "latestmap"
    fits = frozenset(_MAP_TYPES)
    doc = "the whole map sent by the most recent event, replacing earlier maps"

    def _check(self, value: Any) -> None:
        if not isinstance(value, dict):
            raise MergeError(f"latestmap needs a map, got {value!r}")


# --------------------------------------------------------------------------- day buckets


class _Daily(MergeOperator):
    """Values folded per UTC day, so keep_days can drop old days without the events.

    State: ``{"days": {"YYYY-MM-DD": cell}, "rest": cell | None, "rest_until": day | None}``.
    Only the newest ``buckets`` days keep their own cell; older days fold into ``rest``.
    That is exact whatever the order: a day folds into rest only when ``buckets`` newer days
    exist, and they exist in every later state too.
    """

    def __init__(self, buckets: int = DAY_BUCKETS) -> None:
        self.buckets = buckets

    def cell(self, value: Any, at: datetime) -> Any:
        raise NotImplementedError

    def combine(self, a: Any, b: Any) -> Any:
        raise NotImplementedError

    def result(self, cell: Any) -> Any:
        return cell

    def single(self, value: Any, at: datetime) -> State:
        return {"days": {stamp(at)[:10]: self.cell(value, at)}, "rest": None,
                "rest_until": None}

    def merge(self, a: State, b: State, capacity: int | None = None) -> State:
        if a is None and b is None:
            return None
        a = a or {"days": {}, "rest": None, "rest_until": None}
        b = b or {"days": {}, "rest": None, "rest_until": None}
        days = dict(a["days"])
        for day, cell in b["days"].items():
            days[day] = self.combine(days[day], cell) if day in days else cell
        rest = self._combine_optional(a["rest"], b["rest"])
        until = max((d for d in (a["rest_until"], b["rest_until"]) if d), default=None)
        if len(days) > self.buckets:
            for day in sorted(days)[: len(days) - self.buckets]:
                rest = self._combine_optional(rest, days.pop(day))
                until = day if until is None or day > until else until
        return {"days": days, "rest": rest, "rest_until": until}

    def _combine_optional(self, a: Any, b: Any) -> Any:
        if a is None:
            return b
        if b is None:
            return a
        return self.combine(a, b)

    def value(self, state: State, now: datetime | None = None,
              keep_days: int | None = None) -> Any:
        if state is None:
            return None
        cutoff = _cutoff(now, keep_days)
        cutoff_day = None if cutoff is None else cutoff[:10]
        folded = None
        for day in sorted(state["days"]):
            if cutoff_day is None or day >= cutoff_day:
                folded = self._combine_optional(folded, state["days"][day])
        rest = state["rest"]
        # Rolled-up days count whole while any of them is inside the window (an
        # over-count only for keep_days beyond the bucket count).
        if rest is not None and (cutoff_day is None or state["rest_until"] >= cutoff_day):
            folded = self._combine_optional(rest, folded)
        return None if folded is None else self.result(folded)


@register
class Sum(_Daily):
    """The total of the values (int or number fields)."""

    name = "sum"
    fits = frozenset({"int", "number"})
    doc = "the total of the values (counted per day for keep_days)"

    def cell(self, value: Any, at: datetime) -> Any:
        return _number(value, "sum")

    def combine(self, a: Any, b: Any) -> Any:
        return a + b


@register
class Count(_Daily):
    """How many events carried a value, whatever the value."""

    name = "count"
    fits = frozenset({"int", "number"})
    doc = "how many events carried a value (counted per day for keep_days)"

    def cell(self, value: Any, at: datetime) -> Any:
        return 1

    def combine(self, a: Any, b: Any) -> Any:
        return a + b


@register
class Min(_Daily):
    """The smallest value (numbers, strings or dates)."""

    name = "min"
    fits = frozenset({"int", "number", "string", "date"})
    doc = "the smallest value seen"

    def cell(self, value: Any, at: datetime) -> Any:
        if isinstance(value, dict | list):
            raise MergeError(f"min needs a number, string or date, got {value!r}")
        return value

    def combine(self, a: Any, b: Any) -> Any:
        return a if order_key(a) <= order_key(b) else b


@register
class Max(_Daily):
    """The largest value (numbers, strings or dates)."""

    name = "max"
    fits = frozenset({"int", "number", "string", "date"})
    doc = "the largest value seen"

    def cell(self, value: Any, at: datetime) -> Any:
        if isinstance(value, dict | list):
            raise MergeError(f"max needs a number, string or date, got {value!r}")
        return value

    def combine(self, a: Any, b: Any) -> Any:
        return a if order_key(a) >= order_key(b) else b


@register
class Oldest(_Daily):
    """The value of the event with the earliest timestamp (first touch)."""

    name = "oldest"
    fits = frozenset(FIELD_TYPES)
    doc = "the value of the earliest event (by the event's own timestamp)"

    def cell(self, value: Any, at: datetime) -> Any:
        return [stamp(at), value]

    def combine(self, a: Any, b: Any) -> Any:
        return _earlier(a, b)

    def result(self, cell: Any) -> Any:
        return cell[1]


# --------------------------------------------------------------------------- sets


def _newest(entries: dict[str, Any], capacity: int, seen: Callable[[Any], str]) -> dict[str, Any]:
    """The capacity entries seen most recently (ties: the larger key stays)."""
    if len(entries) <= capacity:
        return entries
    keep = sorted(entries, key=lambda k: (seen(entries[k]), k), reverse=True)[:capacity]
    return {k: entries[k] for k in keep}


def _set_single(value: Any, at: datetime, operator: str) -> State:
    items = value if isinstance(value, list) else [value]
    when = stamp(at)
    values: dict[str, str] = {}
    for item in items:
        if not isinstance(item, str):
            raise MergeError(f"{operator} keeps sets of strings, got {item!r}")
        if item:
            values[item] = when
    return {"values": values}


def _set_merge(a: State, b: State, capacity: int) -> State:
    values = dict(a["values"]) if a else {}
    for item, seen in (b["values"].items() if b else ()):
        if item not in values or seen > values[item]:
            values[item] = seen
    return {"values": _newest(values, capacity, lambda seen: seen)}


def _set_current(state: State, now: datetime | None, keep_days: int | None) -> dict[str, str]:
    cutoff = _cutoff(now, keep_days)
    return {k: v for k, v in state["values"].items() if cutoff is None or v >= cutoff}


@register
class Capped(MergeOperator):
    """A set that keeps the newest N values ("last 10 products viewed"), newest first."""

    name = "capped"
    fits = frozenset({"[]string"})
    doc = "a set keeping the capacity values seen most recently, listed newest first"

    def single(self, value: Any, at: datetime) -> State:
        return _set_single(value, at, self.name)

    def merge(self, a: State, b: State, capacity: int | None = None) -> State:
        if a is None and b is None:
            return None
        return _set_merge(a, b, capacity or DEFAULT_CAPPED_CAPACITY)

    def value(self, state: State, now: datetime | None = None,
              keep_days: int | None = None) -> Any:
        if state is None:
            return None
        current = _set_current(state, now, keep_days)
        ordered = sorted(sorted(current), key=lambda k: current[k], reverse=True)
        return ordered or None


# --------------------------------------------------------------------------- maps


def _map_single(value: Any, at: datetime, operator: str, check: Callable[[Any], Any]
                ) -> State:
    if not isinstance(value, dict):
        raise MergeError(f"{operator} needs a map, got {value!r}")
    when = stamp(at)
    return {"keys": {str(k): [when, check(v)] for k, v in value.items() if v is not None}}


def _map_merge(a: State, b: State, capacity: int,
               combine: Callable[[list[Any], list[Any]], list[Any]]) -> State:
    keys = dict(a["keys"]) if a else {}
    for key, cell in (b["keys"].items() if b else ()):
        keys[key] = combine(keys[key], cell) if key in keys else cell
    return {"keys": _newest(keys, capacity, lambda cell: cell[0])}


def _map_value(state: State, now: datetime | None, keep_days: int | None) -> Any:
    if state is None:
        return None
    cutoff = _cutoff(now, keep_days)
    found = {k: cell[1] for k, cell in state["keys"].items() if cutoff is None or cell[0] >= cutoff}
    return found or None


class _MapOperator(MergeOperator):
    """Per-key [last seen, aggregate] cells; keys unseen for keep_days drop out.

    Past capacity the keys seen least recently are dropped. That membership is exact in any
    order; a dropped key that comes back starts again from the events still held.
    """

    fits = frozenset({"map[string]int", "map[string]number"})

    def check(self, value: Any) -> Any:
        return _number(value, self.name)

    def combine(self, a: list[Any], b: list[Any]) -> list[Any]:
        raise NotImplementedError

    def single(self, value: Any, at: datetime) -> State:
        return _map_single(value, at, self.name, self.check)

    def merge(self, a: State, b: State, capacity: int | None = None) -> State:
        if a is None and b is None:
            return None
        return _map_merge(a, b, capacity or DEFAULT_MAP_CAPACITY, self.combine)

    def value(self, state: State, now: datetime | None = None,
              keep_days: int | None = None) -> Any:
        return _map_value(state, now, keep_days)


@register
class MapSum(_MapOperator):
    """Per-key totals: ``map(category, 1)`` counts views per category."""

    name = "mapsum"
    doc = "per key, the total of the values"

    def combine(self, a: list[Any], b: list[Any]) -> list[Any]:
        return [max(a[0], b[0]), a[1] + b[1]]


@register
class MapMax(_MapOperator):
    """Per-key largest value (or latest date: ``map(event, now())``)."""

    name = "mapmax"
    fits = frozenset({"map[string]int", "map[string]number", "map[string]date"})
    doc = "per key, the largest value"

    def check(self, value: Any) -> Any:
        return value if isinstance(value, str) else _number(value, self.name)

    def combine(self, a: list[Any], b: list[Any]) -> list[Any]:
        return [max(a[0], b[0]), a[1] if order_key(a[1]) >= order_key(b[1]) else b[1]]


@register
class MapMin(_MapOperator):
    """Per-key smallest value (or first date)."""

    name = "mapmin"
    fits = frozenset({"map[string]int", "map[string]number", "map[string]date"})
    doc = "per key, the smallest value"

    def check(self, value: Any) -> Any:
        return value if isinstance(value, str) else _number(value, self.name)

    def combine(self, a: list[Any], b: list[Any]) -> list[Any]:
        return [max(a[0], b[0]), a[1] if order_key(a[1]) <= order_key(b[1]) else b[1]]


# --------------------------------------------------------------------------- merge


@register
class Merge(MergeOperator):
    """Set union for []string; for maps, each key keeps its latest value.

    Past capacity the values (or keys) seen least recently are dropped. The public value
    of a set is sorted, so it compares and displays the same whatever the order of events.
    """

    name = "merge"
    fits = frozenset({"[]string", *_MAP_TYPES})
    doc = "set union ([]string) or per-key latest value (maps)"

    def single(self, value: Any, at: datetime) -> State:
        if isinstance(value, dict):
            return _map_single(value, at, self.name, lambda v: v)
        return _set_single(value, at, self.name)

    def merge(self, a: State, b: State, capacity: int | None = None) -> State:
        if a is None and b is None:
            return None
        kinds = {"keys" if "keys" in s else "values" for s in (a, b) if s is not None}
        if len(kinds) > 1:
            raise MergeError("merge cannot combine a set with a map")
        if kinds == {"keys"}:
            return _map_merge(a, b, capacity or DEFAULT_MAP_CAPACITY, _later)
        return _set_merge(a, b, capacity or DEFAULT_SET_CAPACITY)

    def value(self, state: State, now: datetime | None = None,
              keep_days: int | None = None) -> Any:
        if state is None:
            return None
        if "keys" in state:
            return _map_value(state, now, keep_days)
        return sorted(_set_current(state, now, keep_days)) or None


# --------------------------------------------------------------------------- field types

_TRUE_WORDS = frozenset({"true", "t", "yes", "y", "1", "on"})
_FALSE_WORDS = frozenset({"false", "f", "no", "n", "0", "off"})


def _describe(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _coerce_string(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and math.isfinite(value):
        return repr(value)
    if isinstance(value, datetime):
        return stamp(value)
    raise ValueError("expected text")


_INT_RE = re.compile(r"^[+-]?\d+$")
_NUMBER_RE = re.compile(r"^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$")


def _coerce_int(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError("expected an integer, not true/false")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        text = value.strip()
        if _INT_RE.match(text):
            return int(text)
        if not _NUMBER_RE.match(text):
            raise ValueError("expected an integer")
        value = float(text)  # "42.0" fits; "4.5" does not
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    raise ValueError("expected an integer")


def _coerce_number(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError("expected a number, not true/false")
    if isinstance(value, str):
        text = value.strip()
        if not _NUMBER_RE.match(text):
            raise ValueError("expected a number")
        value = float(text)
    if isinstance(value, int | float) and math.isfinite(value):
        return float(value)
    raise ValueError("expected a finite number")


def _coerce_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _TRUE_WORDS:
            return True
        if word in _FALSE_WORDS:
            return False
    raise ValueError("expected true or false")


def _coerce_date(value: Any) -> datetime:
    try:
        found = to_date(value)
    except ExpressionError:
        found = None
    if found is None:
        raise ValueError("expected a date (ISO 8601, RFC 2822 or epoch seconds/milliseconds)")
    return found


_SCALAR_COERCERS: dict[str, Callable[[Any], Any]] = {
    "string": _coerce_string, "int": _coerce_int, "number": _coerce_number,
    "bool": _coerce_bool, "date": _coerce_date,
}


def coerce(field_type: str, value: Any) -> Any:
    """The value as the field's type, or FieldTypeError saying why it does not fit.

    None, "" and empty lists or maps are "no value" and come back as None. Numbers and
    numeric strings convert between each other when nothing is lost ("42" fits int, 4.5
    does not); scalars become text for string fields; one string fits []string as a
    one-element set. Dates come back as UTC datetimes, []string without repeats.
    """
    if field_type not in FIELD_TYPES:
        raise FieldTypeError(f"unknown field type {field_type!r}")
    if value is None or value == "" or (isinstance(value, list | dict) and not value):
        return None
    try:
        if field_type in _SCALAR_COERCERS:
            if isinstance(value, list | dict):
                raise ValueError("expected a single value, not a list or map")
            return _SCALAR_COERCERS[field_type](value)
        if field_type == "[]string":
            return _coerce_strings(value)
        return _coerce_map(field_type, value)
    except (ValueError, TypeError, OverflowError) as exc:
        raise FieldTypeError(
            f"{_describe(value)} does not fit field type {field_type}: {exc}") from None


def _coerce_strings(value: Any) -> list[str] | None:
    if isinstance(value, dict):
        raise ValueError("expected a list of text, not a map")
    items = value if isinstance(value, list | tuple) else [value]
    out: list[str] = []
    for item in items:
        if item is None or item == "":
            continue
        if isinstance(item, list | dict):
            raise ValueError("expected a list of text, found a nested list or map")
        text = _coerce_string(item)
        if text not in out:
            out.append(text)
    return out or None


def _coerce_map(field_type: str, value: Any) -> dict[str, Any] | None:
    if not isinstance(value, dict):
        raise ValueError("expected a map")
    convert = _SCALAR_COERCERS[field_type[len("map[string]"):]]
    out: dict[str, Any] = {}
    for key, item in value.items():
        if item is None or item == "":
            continue
        if isinstance(item, list | dict):
            raise ValueError(f"key {key!r}: expected a single value")
        try:
            out[str(key)] = convert(item)
        except ValueError as exc:
            raise ValueError(f"key {key!r}: {exc}") from None
    return out or None
