"""What the language's values are and what its operators do with them.

Values are JSON's (strings, numbers, bools, lists, maps) plus dates; ``None`` is "missing".
Equality and ordering never coerce (``"1" != 1``), and a value of the wrong type is an
``ExpressionError``. Dates are read from ISO 8601, RFC 2822, epoch seconds or milliseconds, or a
strftime / Go layout (``to_date``), and always come out in UTC.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

from profiles.schema.expressions.errors import ExpressionError

__all__ = [
    "BINARY_IMPLS",
    "EPOCH_MS_THRESHOLD",
    "NUMBER_TYPES",
    "UNARY_IMPLS",
    "ge",
    "gt",
    "has_value",
    "le",
    "lt",
    "member",
    "ne",
    "not_",
    "show_value",
    "strptime_layout",
    "text_of",
    "to_date",
    "to_string",
    "to_utc",
    "type_name",
    "values_equal",
    "want_str",
]

EPOCH_MS_THRESHOLD = 100_000_000_000  # |n| at or above this is epoch milliseconds, else seconds
NUMBER_TYPES = frozenset({int, float})
_TYPE_NAMES = {str: "string", int: "int", float: "number", bool: "bool", list: "list",
               dict: "map", datetime: "date", type(None): "missing"}


def type_name(value: Any) -> str:
    """The language's name for a value's type, for error messages."""
    return _TYPE_NAMES.get(type(value), type(value).__name__)


def show_value(value: Any) -> str:
    """A value's type and (shortened) text, for error messages."""
    text = repr(value)
    return f"{type_name(value)} {text if len(text) <= 40 else text[:37] + '...'}"


def has_value(value: Any) -> bool:
    """Missing, null, "" and empty lists or maps count as no value (as in Lytics)."""
    if value is None or value == "":
        return False
    return not (type(value) in (list, dict) and not value)


def to_utc(value: datetime) -> datetime:
    """Dates without a zone are taken as UTC; every date comes out in UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def want_str(value: Any, what: str = "a string") -> str:
    """The value if it is a string, else the ExpressionError a function raises."""
    if type(value) is not str:
        raise ExpressionError(f"expects {what}, got {show_value(value)}")
    return value


def to_string(value: Any) -> str:
    """A value as text: true/false, digits, ISO dates in UTC, lists and maps as JSON."""
    t = type(value)
    if t is str:
        return value  # type: ignore[no-any-return]
    if t is bool:
        return "true" if value else "false"
    if t is int:
        return str(value)
    if t is float:
        return repr(value)
    if t is datetime:
        return to_utc(value).isoformat()
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      default=str)


def text_of(value: Any) -> str:
    """Strings as they are; numbers as their digits (for hashing an id that is a number)."""
    t = type(value)
    if t is str:
        return value  # type: ignore[no-any-return]
    if t in NUMBER_TYPES:
        return to_string(value)
    raise ExpressionError(f"expects a string or number, got {show_value(value)}")


def values_equal(a: Any, b: Any) -> bool:
    """Equality without coercion: 1 = 1.0, but "1" != 1 and true != 1."""
    ta, tb = type(a), type(b)
    if ta is tb:
        return bool(a == b)
    return ta in NUMBER_TYPES and tb in NUMBER_TYPES and a == b


def _ordered(a: Any, b: Any, symbol: str) -> None:
    ta, tb = type(a), type(b)
    if (ta is tb and ta in (str, int, float, datetime)) or (
        ta in NUMBER_TYPES and tb in NUMBER_TYPES
    ):
        return
    raise ExpressionError(f"cannot compare {type_name(a)} with {type_name(b)} using {symbol}")


def lt(a: Any, b: Any) -> bool:
    _ordered(a, b, "<")
    return bool(a < b)


def le(a: Any, b: Any) -> bool:
    _ordered(a, b, "<=")
    return bool(a <= b)


def gt(a: Any, b: Any) -> bool:
    _ordered(a, b, ">")
    return bool(a > b)


def ge(a: Any, b: Any) -> bool:
    _ordered(a, b, ">=")
    return bool(a >= b)


def ne(a: Any, b: Any) -> bool:
    return not values_equal(a, b)


def member(item: Any, container: Any) -> bool:
    """``item IN container``: list element, substring, or map key."""
    t = type(container)
    if t is list:
        return any(values_equal(item, x) for x in container)
    if t is str:
        return want_str(item, "a string on the left of IN a string") in container
    if t is dict:
        return type(item) is str and item in container
    raise ExpressionError("IN needs a list, string or map on its right, got "
                          f"{show_value(container)}")


def _add(a: Any, b: Any) -> Any:
    ta, tb = type(a), type(b)
    if (ta in NUMBER_TYPES and tb in NUMBER_TYPES) or (ta is tb and ta in (str, list)):
        return a + b
    if ta is datetime and tb in NUMBER_TYPES:
        return a + timedelta(seconds=b)
    if tb is datetime and ta in NUMBER_TYPES:
        return b + timedelta(seconds=a)
    raise ExpressionError(f"cannot add {type_name(a)} and {type_name(b)}")


def _sub(a: Any, b: Any) -> Any:
    ta, tb = type(a), type(b)
    if ta in NUMBER_TYPES and tb in NUMBER_TYPES:
        return a - b
    if ta is datetime and tb is datetime:
        return (a - b).total_seconds()
    if ta is datetime and tb in NUMBER_TYPES:
        return a - timedelta(seconds=b)
    raise ExpressionError(f"cannot subtract {type_name(b)} from {type_name(a)}")


def _numbers(a: Any, b: Any, verb: str) -> None:
    if type(a) not in NUMBER_TYPES or type(b) not in NUMBER_TYPES:
        raise ExpressionError(f"cannot {verb} {type_name(a)} and {type_name(b)}")


def _mul(a: Any, b: Any) -> Any:
    _numbers(a, b, "multiply")
    return a * b


def _div(a: Any, b: Any) -> Any:
    _numbers(a, b, "divide")
    if b == 0:
        raise ExpressionError("division by zero")
    return a / b


def _mod(a: Any, b: Any) -> Any:
    _numbers(a, b, "take the remainder of")
    if b == 0:
        raise ExpressionError("modulo by zero")
    return a % b


def _neg(a: Any) -> Any:
    if type(a) not in NUMBER_TYPES:
        raise ExpressionError(f"cannot negate {show_value(a)}")
    return -a


def _plus(a: Any) -> Any:
    if type(a) not in NUMBER_TYPES:
        raise ExpressionError(f"unary + needs a number, got {show_value(a)}")
    return a


def not_(a: Any) -> bool:
    """NOT: only of true or false."""
    if a is True or a is False:
        return not a
    raise ExpressionError(f"expects true or false, got {show_value(a)}")


BINARY_IMPLS: dict[str, Callable[[Any, Any], Any]] = {
    "=": values_equal, "!=": ne, "<": lt, "<=": le, ">": gt, ">=": ge,
    "+": _add, "-": _sub, "*": _mul, "/": _div, "%": _mod,
    "in": member, "not in": lambda a, b: not member(a, b),
    "contains": lambda a, b: member(b, a),
}
UNARY_IMPLS: dict[str, Callable[[Any], Any]] = {"-": _neg, "+": _plus, "not": not_}


# --------------------------------------------------------------------------- dates

_DIGITS_RE = re.compile(r"^[+-]?\d+(?:\.\d+)?$")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Go reference-time tokens (Mon Jan 2 15:04:05 MST 2006), longest first where they overlap.
_GO_LAYOUT_TOKENS: tuple[tuple[str, str], ...] = (
    ("January", "%B"), ("Jan", "%b"), ("Monday", "%A"), ("Mon", "%a"), ("MST", "%Z"),
    ("2006", "%Y"), ("-07:00", "%z"), ("-0700", "%z"), ("Z07:00", "%z"), ("Z0700", "%z"),
    (".000000", ".%f"), (".999999", ".%f"), (".000", ".%f"), (".999", ".%f"),
    ("01", "%m"), ("02", "%d"), ("_2", "%d"), ("03", "%I"), ("04", "%M"), ("05", "%S"),
    ("06", "%y"), ("15", "%H"), ("PM", "%p"), ("pm", "%p"),
    ("1", "%m"), ("2", "%d"), ("3", "%I"), ("4", "%M"), ("5", "%S"),
)
_STRFTIME_DIRECTIVE_RE = re.compile(r"%(.)", re.DOTALL)
_ALLOWED_DIRECTIVES = frozenset("aAbBcdfGHIjmMpSuUVwWxXyYzZ%")


def _from_epoch(number: float) -> datetime | None:
    seconds = number / 1000 if abs(number) >= EPOCH_MS_THRESHOLD else number
    try:
        return _EPOCH + timedelta(seconds=seconds)
    except OverflowError:
        return None


@functools.lru_cache(maxsize=256)
def strptime_layout(layout: str) -> str:
    """A todate() layout as a strptime format: strftime if it has a %, else Go reference time."""
    if "%" in layout:
        fmt = layout
    else:
        out: list[str] = []
        i = 0
        while i < len(layout):
            for token, directive in _GO_LAYOUT_TOKENS:
                if layout.startswith(token, i):
                    out.append(directive)
                    i += len(token)
                    break
            else:
                out.append(layout[i])
                i += 1
        fmt = "".join(out)
    bad = [d for d in _STRFTIME_DIRECTIVE_RE.findall(fmt) if d not in _ALLOWED_DIRECTIVES]
    if bad or (fmt.endswith("%") and not fmt.endswith("%%")):
        raise ExpressionError(f"invalid date layout {layout!r}")
    return fmt


def to_date(value: Any, layout: str | None = None) -> datetime | None:
    """A date from an ISO-8601 or RFC 2822 string, epoch seconds or milliseconds, or a layout.

    Missing (None) when a string does not read as a date; ExpressionError for a list, map
    or bool. Dates without a zone are taken as UTC; the result is always in UTC.
    """
    t = type(value)
    if t is datetime:
        return to_utc(value)
    if t in NUMBER_TYPES:
        if not math.isfinite(value):
            return None
        return _from_epoch(value)
    if t is not str:
        raise ExpressionError(f"expects a string, number or date, got {show_value(value)}")
    text = value.strip()
    if not text:
        return None
    if layout is not None:
        try:
            return to_utc(datetime.strptime(text, strptime_layout(layout)))
        except ValueError:
            return None
    if _DIGITS_RE.match(text):
        return _from_epoch(float(text) if "." in text else int(text))
    try:
        return to_utc(datetime.fromisoformat(text))
    except ValueError:
        pass
    try:
        return to_utc(parsedate_to_datetime(text))
    except (TypeError, ValueError, IndexError):
        return None
