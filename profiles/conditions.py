"""Property conditions over one event's properties (``{"property": "price", "op": ">",
"value": 10}``), in Python: what calculated attributes use for their ``where``.

The semantics are those of an audience rule's event conditions (docs/audiences.md; audiences
compile the same shape to SQL too). ``profiles`` cannot import ``audiences`` (dependencies
point upstream), so this is a self-contained copy of the Python side; the agreement is checked
by ``tests/profiles/test_calculated_conditions.py`` against ``audiences.compiler``:

- a property compares as its condition's ``type`` (string, number, bool, date), else as its
  value's JSON type; ``exists`` / ``not exists`` need neither;
- a missing property, JSON null or a value of another JSON type is *no value*: positive
  operators are false on it, and ``!=``, ``not contains``, ``not in``, ``not exists`` are
  exactly their negation (so true);
- text compares case-insensitively (PostgreSQL's per-character ``lower``), ordered by code
  point; ``like`` takes ``*`` as the wildcard; numbers compare as exact decimals; dates are
  fixed-width UTC stamps compared as text; ``between`` is inclusive.

Calculated attributes refuse relative dates (``now-30d``): an event is counted once, when it
arrives, so a condition that changes with time could not be kept up to date.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from profiles.schema.merge import stamp

MAX_LIST = 1000
PROPERTY_TYPES = ("string", "number", "bool", "date")
KIND_OF_PROPERTY_TYPE = {"string": "text", "number": "numeric", "bool": "bool", "date": "date",
                         "any": "any"}
CONDITION_KEYS = frozenset({"property", "op", "value", "type"})

Test = Callable[[Any], bool]
Matcher = Callable[[Mapping[str, Any]], bool]


@dataclass(frozen=True)
class Operator:
    name: str
    kinds: frozenset[str]
    shape: str  # none | one | pair | list
    negates: str | None = None


OPERATORS: dict[str, Operator] = {}


def _op(name: str, kinds: str, shape: str, negates: str | None = None) -> None:
    OPERATORS[name] = Operator(name, frozenset(kinds.split()), shape, negates)


_op("=", "text numeric bool date", "one")
_op("!=", "text numeric bool date", "one", negates="=")
for _name in (">", ">=", "<", "<="):
    _op(_name, "text numeric date", "one")
_op("between", "text numeric date", "pair")
_op("contains", "text", "one")
_op("not contains", "text", "one", negates="contains")
_op("like", "text", "one")
_op("in", "text numeric", "list")
_op("not in", "text numeric", "list", negates="in")
_op("exists", "text numeric bool date any", "none")
_op("not exists", "text numeric bool date any", "none", negates="exists")


class ConditionError(ValueError):
    """A ``where`` that cannot be used: ``path`` (``where[1]``), ``code``, ``message``."""

    def __init__(self, path: str, code: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path, self.code, self.message = path, code, message


# ------------------------------------------------------------------------------ values


def fold_case(text: str) -> str:
    """Lower case the way PostgreSQL's lower() does: one character at a time."""
    if text.isascii():
        return text.lower()
    out = []
    for c in text:
        low = c.lower()
        out.append(low if len(low) == 1 else ("i" if c == "\u0130" else c))
    return "".join(out)


def _decimal(value: Any) -> Decimal:
    return Decimal(repr(value)) if isinstance(value, float) else Decimal(value)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


_ISO = re.compile(
    r"^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?(?:Z|[+-]\d{2}:?\d{2})?)?$")


def _date_stamp(value: str) -> str:
    text = value.strip()
    if not _ISO.match(text):
        raise ValueError(f"{value!r} is not an ISO 8601 date (relative dates such as now-30d "
                         "are not allowed here)")
    at = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return stamp(at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC))


@dataclass(frozen=True)
class Kind:
    read: Callable[[Any], Any]  # a property's JSON value -> comparable, None when no value
    value: Callable[[Any], Any]  # a condition's value -> comparable
    problem: Callable[[Any], str | None]  # why a condition's value does not fit


def _date_problem(value: Any) -> str | None:
    if not isinstance(value, str):
        return "expected an ISO 8601 date"
    try:
        _date_stamp(value)
    except ValueError as exc:
        return str(exc)
    return None


KINDS: dict[str, Kind] = {
    "text": Kind(read=lambda v: fold_case(v) if isinstance(v, str) else None,
                 value=fold_case,
                 problem=lambda v: None if isinstance(v, str) else "expected text"),
    "numeric": Kind(read=lambda v: _decimal(v) if _is_number(v) else None, value=_decimal,
                    problem=lambda v: None if _is_number(v) and math.isfinite(v)
                    else "expected a finite number"),
    "bool": Kind(read=lambda v: v if isinstance(v, bool) else None, value=lambda v: v,
                 problem=lambda v: None if isinstance(v, bool) else "expected true or false"),
    "date": Kind(read=lambda v: v if isinstance(v, str) else None, value=_date_stamp,
                 problem=_date_problem),
    "any": Kind(read=lambda v: v, value=lambda v: v,
                problem=lambda v: "this condition takes no value"),
}


# ------------------------------------------------------------------------------ operators

PositiveTest = Callable[[Kind, Any], Test]
TESTS: dict[str, PositiveTest] = {}


def _test(name: str) -> Callable[[PositiveTest], PositiveTest]:
    def register(fn: PositiveTest) -> PositiveTest:
        TESTS[name] = fn
        return fn
    return register


def _compare(check: Callable[[Any, Any], bool]) -> PositiveTest:
    def build(kind: Kind, value: Any) -> Test:
        wanted = kind.value(value)
        return lambda v: check(v, wanted)
    return build


for _symbol, _check in (("=", lambda a, b: a == b), (">", lambda a, b: a > b),
                        (">=", lambda a, b: a >= b), ("<", lambda a, b: a < b),
                        ("<=", lambda a, b: a <= b)):
    TESTS[_symbol] = _compare(_check)


@_test("between")
def _between(kind: Kind, value: Any) -> Test:
    low, high = kind.value(value[0]), kind.value(value[1])
    return lambda v: low <= v <= high


@_test("in")
def _in(kind: Kind, value: Any) -> Test:
    wanted = {kind.value(v) for v in value}
    return lambda v: v in wanted


@_test("contains")
def _contains(kind: Kind, value: Any) -> Test:
    wanted = fold_case(value)
    return lambda v: wanted in v


@_test("like")
def _like(kind: Kind, value: Any) -> Test:
    pattern = re.compile(".*".join(re.escape(p) for p in fold_case(value).split("*")),
                         re.DOTALL)
    return lambda v: pattern.fullmatch(v) is not None


@_test("exists")
def _exists(kind: Kind, value: Any) -> Test:
    return lambda v: True


# ------------------------------------------------------------------------------ public


def condition_type(condition: Mapping[str, Any]) -> str:
    """The type a condition compares as: its ``type``, else its value's, else ``any``."""
    if condition.get("type"):
        return str(condition["type"])
    value = condition.get("value")
    if isinstance(value, list) and value:
        value = value[0]
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "any"


def _value_problem(op: Operator, kind: Kind, condition: Mapping[str, Any]) -> str | None:
    value = condition.get("value")
    if op.shape == "none":
        return "takes no value" if value is not None else None
    if op.shape == "one":
        return kind.problem(value)
    size = 2 if op.shape == "pair" else None
    if not isinstance(value, list) or not value or len(value) > MAX_LIST \
            or (size is not None and len(value) != size):
        return "expected [low, high]" if size else f"expected a list of 1 to {MAX_LIST}"
    return next((p for p in map(kind.problem, value) if p), None)


def validate_where(where: Any) -> None:
    """Raise ConditionError on the first problem of a list of property conditions."""
    if not isinstance(where, list):
        raise ConditionError("where", "bad_where", "where takes a list of property conditions")
    if len(where) > 50:
        raise ConditionError("where", "bad_where", "where takes at most 50 conditions")
    for i, cond in enumerate(where):
        path = f"where[{i}]"
        if not isinstance(cond, dict) or not isinstance(cond.get("property"), str) \
                or not cond["property"].strip() or set(cond) - CONDITION_KEYS:
            raise ConditionError(path, "bad_where", "expected {property, op, value[, type]}")
        ptype = condition_type(cond)
        if ptype not in KIND_OF_PROPERTY_TYPE:
            raise ConditionError(path, "bad_where",
                                 f"type is one of {', '.join(PROPERTY_TYPES)}")
        kind_name = KIND_OF_PROPERTY_TYPE[ptype]
        op = OPERATORS.get(cond.get("op")) if isinstance(cond.get("op"), str) else None
        if op is None:
            raise ConditionError(path, "bad_where", f"unknown operator {cond.get('op')!r}; "
                                 "use one of " + ", ".join(OPERATORS))
        if kind_name not in op.kinds:
            raise ConditionError(path, "bad_where", f"operator {op.name!r} does not apply to "
                                 f"{ptype} properties")
        problem = _value_problem(op, KINDS[kind_name], cond)
        if problem:
            raise ConditionError(path, "bad_where", f"{cond['property']!r} {op.name}: {problem}")


def condition_test(condition: Mapping[str, Any]) -> Test:
    """A test over one property's raw JSON value (None when missing)."""
    op = OPERATORS[condition["op"]]
    kind = KINDS[KIND_OF_PROPERTY_TYPE[condition_type(condition)]]
    test = TESTS[op.negates or op.name](kind, condition.get("value"))
    read = kind.read

    def positive(raw: Any) -> bool:
        v = None if raw is None else read(raw)
        return v is not None and bool(test(v))

    if op.negates:
        return lambda raw: not positive(raw)
    return positive


def compile_where(where: list[dict[str, Any]]) -> Matcher:
    """A test of an event's properties: every condition holds. Validates first."""
    validate_where(where)
    tests = [(cond["property"], condition_test(cond)) for cond in where]
    if not tests:
        return lambda properties: True
    return lambda properties: all(test(properties.get(name)) for name, test in tests)
