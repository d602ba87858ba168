"""The rule core: conditions on one value (``{"op": ">", "value": 10}`` read as a kind), in one
place for everyone who filters profile data.

Calculated attributes use it for their ``where`` (``validate_where``, ``compile_where``: property
conditions over one event's properties); audiences extend it (``audiences.rules`` adds the rule
tree and its validation against the live schema, ``audiences.compiler`` the SQL evaluator and
the predicate over a whole profile). ``profiles`` cannot import ``audiences``, so what both need
lives here: the operators (name, kinds, value shape, negation), the value kinds and the types
read as each, the checks of a rule's value, dates, and the Python test of one value
(``value_test``, what the audience predicate and calculated attributes run). The semantics
(docs/audiences.md; the SQL side agrees, ``tests/audiences/test_compiler_agreement.py``):

- a value is read as its kind: a field's or attribute's type (``KIND_OF_TYPE``), a property
  condition's ``type`` or else its value's JSON type (``property_type``); ``exists`` /
  ``not exists`` need neither;
- a missing value, JSON null or a value of another JSON type is *no value*: positive operators
  are false on it, and ``!=``, ``not contains``, ``not in``, ``not exists`` are exactly their
  negation (so true);
- text compares case-insensitively (PostgreSQL's per-character ``lower``, ``fold_case``),
  ordered by code point; ``like`` takes ``*`` as the wildcard; numbers compare as exact
  decimals; dates are fixed-width UTC stamps (``profiles.schema.merge.stamp``) compared as
  text; ``between`` is inclusive.

Relative dates (``now-30d``) are resolved against a ``now``; without one (``now=None``) only
absolute dates are valid. Calculated attributes pass none: an event is counted once, when it
arrives, so a condition that changes with time could not be kept up to date.
"""

from __future__ import annotations

import calendar
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from profiles.schema.merge import stamp

MAX_LIST = 1000
MAX_WHERE = 50

Test = Callable[[Any], bool]
Matcher = Callable[[Mapping[str, Any]], bool]

# ------------------------------------------------------------------------------ value kinds

# A field type is read through one "kind": the operators and values that make sense for it.
KIND_OF_TYPE: dict[str, str] = {
    "string": "text", "int": "numeric", "number": "numeric", "bool": "bool", "date": "date",
    "[]string": "set", "map[string]int": "map", "map[string]number": "map",
    "map[string]string": "map", "map[string]date": "map",
}
# Event properties are untyped: a property condition names its type (or takes its value's).
PROPERTY_TYPES = ("string", "number", "bool", "date")
KIND_OF_PROPERTY_TYPE = {"string": "text", "number": "numeric", "bool": "bool",
                         "date": "date", "any": "any"}
PROPERTY_KEYS = frozenset({"property", "op", "value", "type"})


def property_type(condition: Mapping[str, Any]) -> str:
    """The type a property condition compares as: its ``type``, else its value's, else
    ``any`` (only exists / not exists)."""
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


# ------------------------------------------------------------------------------ operators


@dataclass(frozen=True)
class Operator:
    """What an operator accepts: on which kinds, and the shape of its value
    (``none``, ``one``, ``pair`` for between, ``list`` for in / intersects)."""

    name: str
    kinds: frozenset[str]
    shape: str
    negates: str | None = None  # a negative operator is exactly NOT its positive one


OPERATORS: dict[str, Operator] = {}


def _op(name: str, kinds: str, shape: str, negates: str | None = None) -> None:
    OPERATORS[name] = Operator(name, frozenset(kinds.split()), shape, negates)


_op("=", "text numeric bool date", "one")
_op("!=", "text numeric bool date", "one", negates="=")
for _name in (">", ">=", "<", "<="):
    _op(_name, "text numeric date", "one")
_op("between", "text numeric date", "pair")
_op("contains", "text set map", "one")
_op("not contains", "text set map", "one", negates="contains")
_op("like", "text set", "one")
_op("in", "text numeric", "list")
_op("not in", "text numeric", "list", negates="in")
_op("intersects", "set", "list")
_op("exists", "text numeric bool date set map any", "none")
_op("not exists", "text numeric bool date set map any", "none", negates="exists")

# The operators a property condition can use at all (``intersects`` is for set fields only).
PROPERTY_OPERATORS = {name: op for name, op in OPERATORS.items()
                      if op.kinds & set(KIND_OF_PROPERTY_TYPE.values())}

# ------------------------------------------------------------------------------ dates

_RELATIVE = re.compile(r"^now(?:\s*([+-])\s*(\d{1,6})\s*([hdwMy]))?$")
_ISO = re.compile(
    r"^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?(?:Z|[+-]\d{2}:?\d{2})?)?$")


def _add_months(at: datetime, months: int) -> datetime:
    month0 = at.month - 1 + months
    year, month = at.year + month0 // 12, month0 % 12 + 1
    day = min(at.day, calendar.monthrange(year, month)[1])
    return at.replace(year=year, month=month, day=day)


_UNITS: dict[str, Callable[[datetime, int], datetime]] = {
    "h": lambda at, n: at + timedelta(hours=n),
    "d": lambda at, n: at + timedelta(days=n),
    "w": lambda at, n: at + timedelta(weeks=n),
    "M": _add_months,
    "y": lambda at, n: _add_months(at, 12 * n),
}


def is_relative_date(value: Any) -> bool:
    """Whether the value is a relative date (``now``, ``now-30d``)."""
    return isinstance(value, str) and bool(_RELATIVE.match(value.strip()))


def resolve_date(value: str, now: datetime | None) -> datetime:
    """A date value as a UTC instant: ISO 8601 (a bare date is midnight UTC) or, given a
    ``now``, ``now``, ``now-30d``, ``now+2w`` (units h d w M y; M and y are calendar months and
    years, the day clamped to the month's end). Raises ValueError for anything else."""
    text = value.strip()
    found = _RELATIVE.match(text)
    if found and now is not None:
        now = now.astimezone(UTC)
        if not found.group(1):
            return now
        amount = int(found.group(2)) * (-1 if found.group(1) == "-" else 1)
        return _UNITS[found.group(3)](now, amount)
    if not _ISO.match(text):
        if now is None:
            raise ValueError(f"{value!r} is not an ISO 8601 date (relative dates such as "
                             "now-30d are not allowed here)")
        raise ValueError(f"{value!r} is not a date (ISO 8601, or now-30d with units h d w M y)")
    at = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


# ------------------------------------------------------------------------------ reading values


def fold_case(text: str) -> str:
    """Lower case the way PostgreSQL's lower() does: one character at a time (no final sigma,
    İ becomes i)."""
    if text.isascii():
        return text.lower()
    return "".join(_fold_char(c) for c in text)


def _fold_char(c: str) -> str:
    low = c.lower()
    return low if len(low) == 1 else ("i" if c == "\u0130" else c)


def to_decimal(value: int | float) -> Decimal:
    """A JSON number as the exact decimal it reads as (0.1 is 0.1, as in jsonb)."""
    return Decimal(repr(value)) if isinstance(value, float) else Decimal(value)


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


@dataclass(frozen=True)
class Kind:
    """How one kind of value is read, compared and checked in Python.

    ``read`` turns a stored JSON value into the comparable one (None when it is of another
    type: no value); ``value`` prepares a rule's value (checked before; dates resolved against
    ``now``); ``problem`` says why a rule's value does not fit, or None."""

    read: Callable[[Any], Any]
    value: Callable[[Any, datetime | None], Any]
    problem: Callable[[Any, datetime | None], str | None]


def _text_problem(value: Any, now: datetime | None) -> str | None:
    return None if isinstance(value, str) else "expected text"


def _numeric_problem(value: Any, now: datetime | None) -> str | None:
    if not is_number(value):
        return "expected a number"
    return None if math.isfinite(value) else "expected a finite number"


def _date_problem(value: Any, now: datetime | None) -> str | None:
    if not isinstance(value, str):
        return "expected an ISO 8601 date" if now is None \
            else "expected a date (ISO 8601 or now-30d)"
    try:
        resolve_date(value, now)
    except (ValueError, OverflowError) as exc:
        return str(exc)
    return None


KINDS: dict[str, Kind] = {
    "text": Kind(read=lambda v: fold_case(v) if isinstance(v, str) else None,
                 value=lambda v, now: fold_case(v), problem=_text_problem),
    "numeric": Kind(read=lambda v: to_decimal(v) if isinstance(v, int | float)
                    and not isinstance(v, bool) else None,  # is_number, inlined: real time
                    value=lambda v, now: to_decimal(v), problem=_numeric_problem),
    "bool": Kind(read=lambda v: v if isinstance(v, bool) else None, value=lambda v, now: v,
                 problem=lambda v, now: None if isinstance(v, bool) else "expected true or false"),
    "date": Kind(read=lambda v: v if isinstance(v, str) else None,
                 value=lambda v, now: stamp(resolve_date(v, now)), problem=_date_problem),
    "set": Kind(read=lambda v: [fold_case(x) for x in v if isinstance(x, str)]
                if isinstance(v, list) else None,
                value=lambda v, now: fold_case(v), problem=_text_problem),
    "map": Kind(read=lambda v: [fold_case(str(k)) for k in v] if isinstance(v, dict) else None,
                value=lambda v, now: fold_case(v), problem=_text_problem),
    "any": Kind(read=lambda v: v, value=lambda v, now: v,
                problem=lambda v, now: "this type takes no value"),
}


def check_value(op: Operator, kind: str, value: Any, now: datetime | None,
                present: bool = True) -> str | None:
    """Why this value does not fit the operator on this kind, or None (``now``: see
    resolve_date; ``present``: whether the condition has a value at all)."""
    if op.shape == "none":
        return "takes no value" if present and value is not None else None
    problem = KINDS[kind].problem
    if op.shape == "one":
        return problem(value, now)
    expected = 2 if op.shape == "pair" else None
    if not isinstance(value, list) or not value or len(value) > MAX_LIST \
            or (expected is not None and len(value) != expected):
        return "expected [low, high]" if expected else f"expected a list of 1 to {MAX_LIST}"
    return next((p for p in (problem(item, now) for item in value) if p), None)


# ------------------------------------------------------------------------------ tests
#
# One small function per positive operator (and kind, where kinds differ): given the kind, the
# rule's value and now, a test over the comparable value (never None: None is handled before).

TestMaker = Callable[[Kind, Any, datetime | None], Test]
TESTS: dict[str, dict[str, TestMaker]] = {}  # op → kind ("*" for any) → function


def _tests(name: str, kinds: str = "*") -> Callable[[TestMaker], TestMaker]:
    def register(fn: TestMaker) -> TestMaker:
        for kind in kinds.split():
            TESTS.setdefault(name, {})[kind] = fn
        return fn
    return register


def _compare(check: Callable[[Any, Any], bool]) -> TestMaker:
    def compare(kind: Kind, value: Any, now: datetime | None) -> Test:
        wanted = kind.value(value, now)
        return lambda v: check(v, wanted)
    return compare


for _symbol, _check in (
    ("=", lambda a, b: a == b), (">", lambda a, b: a > b), (">=", lambda a, b: a >= b),
    ("<", lambda a, b: a < b), ("<=", lambda a, b: a <= b),
):
    _tests(_symbol, "text numeric bool date")(_compare(_check))


@_tests("between", "text numeric date")
def _between(kind: Kind, value: Any, now: datetime | None) -> Test:
    low, high = kind.value(value[0], now), kind.value(value[1], now)
    return lambda v: low <= v <= high


@_tests("in", "text numeric")
def _in(kind: Kind, value: Any, now: datetime | None) -> Test:
    wanted = {kind.value(v, now) for v in value}
    return lambda v: v in wanted


def like_regex(value: str) -> re.Pattern[str]:
    """A ``like`` pattern (``*`` the wildcard) as a regular expression over folded text."""
    return re.compile(".*".join(re.escape(part) for part in fold_case(value).split("*")),
                      re.DOTALL)


@_tests("contains", "text set map")
def _contains(kind: Kind, value: Any, now: datetime | None) -> Test:
    # a substring of text, an element of a set, a key of a map
    wanted = fold_case(value)
    return lambda v: wanted in v


@_tests("like", "text")
def _like_text(kind: Kind, value: Any, now: datetime | None) -> Test:
    pattern = like_regex(value)
    return lambda v: pattern.fullmatch(v) is not None


@_tests("like", "set")
def _like_set(kind: Kind, value: Any, now: datetime | None) -> Test:
    pattern = like_regex(value)
    return lambda v: any(pattern.fullmatch(x) for x in v)


@_tests("intersects", "set")
def _intersects(kind: Kind, value: Any, now: datetime | None) -> Test:
    wanted = {fold_case(v) for v in value}
    return lambda v: any(x in wanted for x in v)


@_tests("exists")
def _exists(kind: Kind, value: Any, now: datetime | None) -> Test:
    return lambda v: True


def value_test(kind_name: str, op_name: str, value: Any, now: datetime | None) -> Test:
    """A test of one raw JSON value (None when missing) read as ``kind_name``, with operator
    ``op_name`` and the condition's (checked) ``value``, dates resolved against ``now``: what a
    field, attribute or property condition checks."""
    op = OPERATORS[op_name]
    kind = KINDS[kind_name]
    by_kind = TESTS[op.negates or op.name]
    test = (by_kind.get(kind_name) or by_kind["*"])(kind, value, now)
    read = kind.read

    def positive(raw: Any) -> bool:
        v = None if raw is None else read(raw)
        return v is not None and bool(test(v))

    if op.negates:
        return lambda raw: not positive(raw)
    return positive


def properties_test(conditions: Sequence[Mapping[str, Any]], now: datetime | None) -> Matcher:
    """A test of an event's properties: every (checked) property condition holds."""
    tests = [(cond["property"], value_test(KIND_OF_PROPERTY_TYPE[property_type(cond)],
                                           cond["op"], cond.get("value"), now))
             for cond in conditions]
    return lambda properties: all(test(properties.get(name)) for name, test in tests)


# ------------------------------------------------------------------------------ where


class ConditionError(ValueError):
    """A ``where`` that cannot be used: ``path`` (``where[1]``), ``code``, ``message``."""

    def __init__(self, path: str, code: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path, self.code, self.message = path, code, message


def validate_where(where: Any) -> None:
    """Raise ConditionError on the first problem of a list of property conditions (absolute
    dates only)."""
    if not isinstance(where, list):
        raise ConditionError("where", "bad_where", "where takes a list of property conditions")
    if len(where) > MAX_WHERE:
        raise ConditionError("where", "bad_where",
                             f"where takes at most {MAX_WHERE} conditions")
    for i, cond in enumerate(where):
        path = f"where[{i}]"
        if not isinstance(cond, dict) or not isinstance(cond.get("property"), str) \
                or not cond["property"].strip() or set(cond) - PROPERTY_KEYS:
            raise ConditionError(path, "bad_where", "expected {property, op, value[, type]}")
        ptype = property_type(cond)
        if ptype not in KIND_OF_PROPERTY_TYPE:
            raise ConditionError(path, "bad_where",
                                 f"type is one of {', '.join(PROPERTY_TYPES)}")
        kind = KIND_OF_PROPERTY_TYPE[ptype]
        op = PROPERTY_OPERATORS.get(cond["op"]) if isinstance(cond.get("op"), str) else None
        if op is None:
            raise ConditionError(path, "bad_where", f"unknown operator {cond.get('op')!r}; "
                                 "use one of " + ", ".join(PROPERTY_OPERATORS))
        if kind not in op.kinds:
            raise ConditionError(path, "bad_where", f"operator {op.name!r} does not apply to "
                                 f"{ptype} properties")
        problem = check_value(op, kind, cond.get("value"), None)
        if problem:
            raise ConditionError(path, "bad_where", f"{cond['property']!r} {op.name}: {problem}")


def compile_where(where: list[dict[str, Any]]) -> Matcher:
    """A test of an event's properties: every condition holds. Validates first."""
    validate_where(where)
    return properties_test(where, None)
