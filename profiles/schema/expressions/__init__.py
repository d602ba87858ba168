"""The expression language of mappings, guards and route rules (issue 4, item 3).

Marketers write expressions such as ``email(origin.email)`` or
``contains(`_url`, "localhost")``; they run on every raw event, so the text is parsed
once with lark (never ``eval``), checked (unknown functions, arity, bad constant
arguments are refused with a position), and compiled into nested Python closures so that
evaluation does no tree walking. docs/expressions.md is the language reference.

Missing values: a path that is absent, or JSON ``null``, evaluates to ``None`` ("missing").
Functions of a missing argument return missing instead of raising, so a mapping simply
produces no value; ``exists``, ``oneof``, ``set``, ``join``, ``sum`` and ``count`` are the
functions that look at missing values themselves. A value of the wrong type is an
:class:`ExpressionError` at evaluation (the pipeline records it on the event).
"""

from __future__ import annotations

import copy as copy_module
import difflib
import functools
import hashlib
import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any, NamedTuple
from urllib.parse import parse_qs, unquote_plus, urlsplit

import ua_parser
from lark import Lark, Token, Transformer, Tree, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedToken, VisitError

__all__ = [
    "FUNCTIONS",
    "Expression",
    "ExpressionError",
    "ExpressionSyntaxError",
    "FunctionSpec",
    "compile_expression",
    "to_date",
]

MAX_EXPRESSION_LENGTH = 4000
MAX_DEPTH = 100
MAX_PATTERN_LENGTH = 256
MAX_MATCH_INPUT = 10_000
EPOCH_MS_THRESHOLD = 100_000_000_000  # |n| at or above this is epoch milliseconds, else seconds

Evaluator = Callable[[Any, "datetime | None"], Any]


# --------------------------------------------------------------------------- errors


class ExpressionSyntaxError(ValueError):
    """An expression refused at compile time: the reason and where (1-based line, column)."""

    def __init__(self, reason: str, line: int, column: int, hint: str | None = None) -> None:
        self.reason = reason
        self.line = line
        self.column = column
        self.hint = hint
        message = f"{reason} at {line}:{column}"
        super().__init__(f"{message}; {hint}" if hint else message)


class ExpressionError(ValueError):
    """A value an expression cannot work with, found while evaluating one event."""

    def __init__(self, reason: str, where: str | None = None, label: str | None = None) -> None:
        self.reason = reason
        self.where = where  # "tolower() at 1:5"
        self.label = label  # "tolower()"
        super().__init__(f"{where}: {reason}" if where else reason)

    def located(self, label: str, line: int, column: int) -> ExpressionError:
        """The same error naming the innermost function or operator that raised it."""
        if self.where:
            return self
        return ExpressionError(self.reason, f"{label} at {line}:{column}", label)


# --------------------------------------------------------------------------- grammar

GRAMMAR = r"""
?start: expr

?expr: or_expr
?or_expr: and_expr (OR and_expr)*
?and_expr: not_expr (AND not_expr)*
?not_expr: NOT not_expr            -> not_op
         | comparison
?comparison: sum_expr
           | sum_expr COMP_OP sum_expr       -> compare
           | sum_expr IN sum_expr            -> in_op
           | sum_expr NOT IN sum_expr        -> not_in_op
           | sum_expr CONTAINS sum_expr      -> contains_op
?sum_expr: product
         | sum_expr ADD_OP product           -> arith
?product: unary
        | product MUL_OP unary               -> arith
?unary: atom
      | ADD_OP unary                         -> sign
?atom: STRING                                -> string
     | FLOAT                                 -> float
     | INT                                   -> int
     | TRUE                                  -> true
     | FALSE                                 -> false
     | NULL                                  -> null
     | PATH                                  -> path
     | FUNC_NAME "(" [expr ("," expr)*] ")"  -> call
     | "[" [expr ("," expr)* [","]] "]"      -> list
     | "(" expr ")"

OR.2: /or\b/i
AND.2: /and\b/i
NOT.2: /not\b/i
IN.2: /in\b/i
CONTAINS.2: /contains\b/i
TRUE.2: /true\b/i
FALSE.2: /false\b/i
NULL.2: /null\b/i
FUNC_NAME.3: /[^\W\d]\w*(?:\.[^\W\d]\w*)*(?=\s*\()/
PATH.1: /(?:[^\W\d]\w*|`(?:[^`\\\n]|\\.)+`)(?:\.(?:\w+|`(?:[^`\\\n]|\\.)+`)|\[-?\d+\])*/
COMP_OP: "==" | "!=" | "<=" | ">=" | "=" | "<" | ">"
ADD_OP: "+" | "-"
MUL_OP: "*" | "/" | "%"
STRING: /"(?:[^"\\\n]|\\.)*"/ | /'(?:[^'\\\n]|\\.)*'/
FLOAT: /\d+\.\d+(?:[eE][+-]?\d+)?/ | /\d+[eE][+-]?\d+/
INT: /\d+/

%ignore /\s+/
"""

_CLOSERS = {"RPAR": "')'", "RSQB": "']'"}


@functools.cache
def _parser() -> Lark:
    """Built on first use: constructing the LALR tables costs tens of milliseconds."""
    return Lark(GRAMMAR, parser="lalr", lexer="contextual", propagate_positions=True,
                maybe_placeholders=False)


# --------------------------------------------------------------------------- AST


@dataclass(frozen=True, slots=True)
class Node:
    line: int
    column: int


@dataclass(frozen=True, slots=True)
class Literal(Node):
    value: Any


@dataclass(frozen=True, slots=True)
class Path(Node):
    segments: tuple[str | int, ...]
    text: str


@dataclass(frozen=True, slots=True)
class Call(Node):
    name: str
    args: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class ListNode(Node):
    items: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Unary(Node):
    op: str  # "-", "+", "not"
    operand: Node


@dataclass(frozen=True, slots=True)
class Binary(Node):
    op: str  # "=", "!=", "<", "<=", ">", ">=", "+", "-", "*", "/", "%", "in", "not in", "contains"
    left: Node
    right: Node


@dataclass(frozen=True, slots=True)
class Logical(Node):
    op: str  # "and", "or"
    operands: tuple[Node, ...]


# \b and \f are left out on purpose: unknown escapes stay as written, so regular
# expressions such as "\bword\b" or "\d+" need no doubled backslashes.
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "0": "\0", "\\": "\\", '"': '"', "'": "'",
            "/": "/", "`": "`"}
_ESCAPE_RE = re.compile(r"\\(u[0-9a-fA-F]{4}|.)", re.DOTALL)
_BACKTICK_RE = re.compile(r"`((?:[^`\\]|\\.)+)`")


def _unescape(body: str) -> str:
    def replace(m: re.Match[str]) -> str:
        code = m.group(1)
        if len(code) == 5:
            return chr(int(code[1:], 16))
        return _ESCAPES.get(code, m.group(0))

    return _ESCAPE_RE.sub(replace, body) if "\\" in body else body


def _split_path(token: Token) -> tuple[tuple[str | int, ...], str]:
    """A PATH token into segments (names and indexes) and the flat-key text it reads."""
    text = str(token)
    segments: list[str | int] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == ".":
            i += 1
            continue
        if ch == "[":
            end = text.index("]", i)
            segments.append(int(text[i + 1:end]))
            i = end + 1
        elif ch == "`":
            m = _BACKTICK_RE.match(text, i)
            assert m is not None  # the lexer only produces closed backticks
            segments.append(re.sub(r"\\(.)", r"\1", m.group(1)))
            i = m.end()
        else:
            m = re.compile(r"\w+").match(text, i)
            assert m is not None
            segments.append(m.group(0))
            i = m.end()
    return tuple(segments), _render(tuple(segments))


def _render(segments: tuple[str | int, ...]) -> str:
    """How a run of segments appears as one flat key (``response.activities[0].data``)."""
    out = ""
    for seg in segments:
        if isinstance(seg, int):
            out += f"[{seg}]"
        else:
            out = f"{out}.{seg}" if out else seg
    return out


def _pos(tok: Token) -> tuple[int, int]:
    return tok.line or 1, tok.column or 1


class _ToAst(Transformer[Token, Node]):
    """Lark's parse tree into our AST, with the position of each operator and call."""

    @v_args(inline=True)
    def string(self, tok: Token) -> Node:
        return Literal(*_pos(tok), value=_unescape(tok[1:-1]))

    @v_args(inline=True)
    def int(self, tok: Token) -> Node:
        return Literal(*_pos(tok), value=int(tok))

    @v_args(inline=True)
    def float(self, tok: Token) -> Node:
        return Literal(*_pos(tok), value=float(tok))

    @v_args(inline=True)
    def true(self, tok: Token) -> Node:
        return Literal(*_pos(tok), value=True)

    @v_args(inline=True)
    def false(self, tok: Token) -> Node:
        return Literal(*_pos(tok), value=False)

    @v_args(inline=True)
    def null(self, tok: Token) -> Node:
        return Literal(*_pos(tok), value=None)

    @v_args(inline=True)
    def path(self, tok: Token) -> Node:
        segments, text = _split_path(tok)
        return Path(*_pos(tok), segments=segments, text=text)

    def call(self, children: list[Any]) -> Node:
        name, *args = children
        return Call(*_pos(name), name=str(name).lower(), args=tuple(args))

    @v_args(meta=True)
    def list(self, meta: Any, items: list[Node]) -> Node:
        return ListNode(getattr(meta, "line", 1), getattr(meta, "column", 1), items=tuple(items))

    @v_args(inline=True)
    def sign(self, op: Token, operand: Node) -> Node:
        return Unary(*_pos(op), op=str(op), operand=operand)

    @v_args(inline=True)
    def not_op(self, op: Token, operand: Node) -> Node:
        return Unary(*_pos(op), op="not", operand=operand)

    @v_args(inline=True)
    def compare(self, left: Node, op: Token, right: Node) -> Node:
        return Binary(*_pos(op), op="=" if op == "==" else str(op), left=left, right=right)

    @v_args(inline=True)
    def arith(self, left: Node, op: Token, right: Node) -> Node:
        return Binary(*_pos(op), op=str(op), left=left, right=right)

    @v_args(inline=True)
    def in_op(self, left: Node, op: Token, right: Node) -> Node:
        return Binary(*_pos(op), op="in", left=left, right=right)

    @v_args(inline=True)
    def not_in_op(self, left: Node, op: Token, _in: Token, right: Node) -> Node:
        return Binary(*_pos(op), op="not in", left=left, right=right)

    @v_args(inline=True)
    def contains_op(self, left: Node, op: Token, right: Node) -> Node:
        return Binary(*_pos(op), op="contains", left=left, right=right)

    def or_expr(self, children: list[Any]) -> Node:
        return self._logical("or", children)

    def and_expr(self, children: list[Any]) -> Node:
        return self._logical("and", children)

    @staticmethod
    def _logical(op: str, children: list[Any]) -> Node:
        first_op = next(c for c in children if isinstance(c, Token))
        operands = tuple(c for c in children if not isinstance(c, Token))
        return Logical(*_pos(first_op), op=op, operands=operands)


def parse(text: str) -> Node:
    """Text to AST, with lark's errors turned into positioned ExpressionSyntaxErrors."""
    if not isinstance(text, str):
        raise ExpressionSyntaxError("an expression must be text", 1, 1)
    if not text.strip():
        raise ExpressionSyntaxError("empty expression", 1, 1)
    if len(text) > MAX_EXPRESSION_LENGTH:
        raise ExpressionSyntaxError(
            f"expression is longer than {MAX_EXPRESSION_LENGTH} characters", 1, 1)
    try:
        tree = _parser().parse(text)
    except UnexpectedToken as exc:
        raise _unexpected_token(text, exc) from None
    except UnexpectedCharacters as exc:
        ch = text[exc.pos_in_stream]
        reason = {'"': "unterminated string", "'": "unterminated string",
                  "`": "unterminated backtick name"}.get(ch, f"unexpected character {ch!r}")
        raise ExpressionSyntaxError(reason, exc.line, exc.column) from None
    except UnexpectedEOF:
        line, column = _end_position(text)
        raise ExpressionSyntaxError("unexpected end of expression", line, column) from None
    try:
        return _transform(tree)
    except VisitError as exc:
        if isinstance(exc.orig_exc, ExpressionSyntaxError):
            raise exc.orig_exc from None
        raise
    except RecursionError:
        raise ExpressionSyntaxError("expression nests too deeply", 1, 1) from None


def _transform(tree: Tree[Token]) -> Node:
    result = _ToAst().transform(tree)
    if not isinstance(result, Node):  # pragma: no cover - every rule has a callback
        raise ExpressionSyntaxError("could not read the expression", 1, 1)
    return result


def _end_position(text: str) -> tuple[int, int]:
    lines = text.split("\n")
    return len(lines), len(lines[-1]) + 1


def _unexpected_token(text: str, exc: UnexpectedToken) -> ExpressionSyntaxError:
    tok = exc.token
    if tok.type == "$END":
        closers = sorted(_CLOSERS[n] for n in exc.expected if n in _CLOSERS)
        hint = f"missing {' or '.join(closers)}?" if closers else None
        line, column = _end_position(text)
        return ExpressionSyntaxError("unexpected end of expression", line, column, hint)
    return ExpressionSyntaxError(f"unexpected token '{tok}'", tok.line or 1, tok.column or 1)


# --------------------------------------------------------------------------- values

_NUMBER_TYPES = frozenset({int, float})
_TYPE_NAMES = {str: "string", int: "int", float: "number", bool: "bool", list: "list",
               dict: "map", datetime: "date", type(None): "missing"}


def type_name(value: Any) -> str:
    """The language's name for a value's type, for error messages."""
    return _TYPE_NAMES.get(type(value), type(value).__name__)


def _show(value: Any) -> str:
    text = repr(value)
    return f"{type_name(value)} {text if len(text) <= 40 else text[:37] + '...'}"


def has_value(value: Any) -> bool:
    """Missing, null, "" and empty lists or maps count as no value (as in Lytics)."""
    if value is None or value == "":
        return False
    return not (type(value) in (list, dict) and not value)


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _want_str(value: Any, what: str = "a string") -> str:
    if type(value) is not str:
        raise ExpressionError(f"expects {what}, got {_show(value)}")
    return value


def _text_of(value: Any) -> str:
    """Strings as they are; numbers as their digits (for hashing an id that is a number)."""
    t = type(value)
    if t is str:
        return value  # type: ignore[no-any-return]
    if t in _NUMBER_TYPES:
        return _to_string(value)
    raise ExpressionError(f"expects a string or number, got {_show(value)}")


def values_equal(a: Any, b: Any) -> bool:
    """Equality without coercion: 1 = 1.0, but "1" != 1 and true != 1."""
    ta, tb = type(a), type(b)
    if ta is tb:
        return bool(a == b)
    return ta in _NUMBER_TYPES and tb in _NUMBER_TYPES and a == b


def _ordered(a: Any, b: Any, symbol: str) -> None:
    ta, tb = type(a), type(b)
    if (ta is tb and ta in (str, int, float, datetime)) or (
        ta in _NUMBER_TYPES and tb in _NUMBER_TYPES
    ):
        return
    raise ExpressionError(f"cannot compare {type_name(a)} with {type_name(b)} using {symbol}")


def _lt(a: Any, b: Any) -> bool:
    _ordered(a, b, "<")
    return bool(a < b)


def _le(a: Any, b: Any) -> bool:
    _ordered(a, b, "<=")
    return bool(a <= b)


def _gt(a: Any, b: Any) -> bool:
    _ordered(a, b, ">")
    return bool(a > b)


def _ge(a: Any, b: Any) -> bool:
    _ordered(a, b, ">=")
    return bool(a >= b)


def _ne(a: Any, b: Any) -> bool:
    return not values_equal(a, b)


def _member(item: Any, container: Any) -> bool:
    """``item IN container``: list element, substring, or map key."""
    t = type(container)
    if t is list:
        return any(values_equal(item, x) for x in container)
    if t is str:
        return _want_str(item, "a string on the left of IN a string") in container
    if t is dict:
        return type(item) is str and item in container
    raise ExpressionError(f"IN needs a list, string or map on its right, got {_show(container)}")


def _add(a: Any, b: Any) -> Any:
    ta, tb = type(a), type(b)
    if (ta in _NUMBER_TYPES and tb in _NUMBER_TYPES) or (ta is tb and ta in (str, list)):
        return a + b
    if ta is datetime and tb in _NUMBER_TYPES:
        return a + timedelta(seconds=b)
    if tb is datetime and ta in _NUMBER_TYPES:
        return b + timedelta(seconds=a)
    raise ExpressionError(f"cannot add {type_name(a)} and {type_name(b)}")


def _sub(a: Any, b: Any) -> Any:
    ta, tb = type(a), type(b)
    if ta in _NUMBER_TYPES and tb in _NUMBER_TYPES:
        return a - b
    if ta is datetime and tb is datetime:
        return (a - b).total_seconds()
    if ta is datetime and tb in _NUMBER_TYPES:
        return a - timedelta(seconds=b)
    raise ExpressionError(f"cannot subtract {type_name(b)} from {type_name(a)}")


def _numbers(a: Any, b: Any, verb: str) -> None:
    if type(a) not in _NUMBER_TYPES or type(b) not in _NUMBER_TYPES:
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
    if type(a) not in _NUMBER_TYPES:
        raise ExpressionError(f"cannot negate {_show(a)}")
    return -a


def _plus(a: Any) -> Any:
    if type(a) not in _NUMBER_TYPES:
        raise ExpressionError(f"unary + needs a number, got {_show(a)}")
    return a


def _not(a: Any) -> bool:
    if a is True or a is False:
        return not a
    raise ExpressionError(f"expects true or false, got {_show(a)}")


_BINARY_IMPLS: dict[str, Callable[[Any, Any], Any]] = {
    "=": values_equal, "!=": _ne, "<": _lt, "<=": _le, ">": _gt, ">=": _ge,
    "+": _add, "-": _sub, "*": _mul, "/": _div, "%": _mod,
    "in": _member, "not in": lambda a, b: not _member(a, b),
    "contains": lambda a, b: _member(b, a),
}


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
        return _utc(value)
    if t in _NUMBER_TYPES:
        if not math.isfinite(value):
            return None
        return _from_epoch(value)
    if t is not str:
        raise ExpressionError(f"expects a string, number or date, got {_show(value)}")
    text = value.strip()
    if not text:
        return None
    if layout is not None:
        try:
            return _utc(datetime.strptime(text, strptime_layout(layout)))
        except ValueError:
            return None
    if _DIGITS_RE.match(text):
        return _from_epoch(float(text) if "." in text else int(text))
    try:
        return _utc(datetime.fromisoformat(text))
    except ValueError:
        pass
    try:
        return _utc(parsedate_to_datetime(text))
    except (TypeError, ValueError, IndexError):
        return None


# --------------------------------------------------------------------------- emails and URLs

_EMAIL_RE = re.compile(
    r"([A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*)"
    r"@((?:[A-Za-z0-9-]+\.)+(?:[A-Za-z]{2,63}|xn--[A-Za-z0-9-]{1,59}))",
    re.ASCII,
)
_DISPLAY_RE = re.compile(r'^\s*"?([^"<]*?)"?\s*<([^<>]*)>\s*$')


def parse_email(value: str) -> tuple[str, str, str] | None:
    """(display name, local part, domain) of a valid address, lowercased; None if invalid.

    Accepts ``bob@example.com`` and ``Bob <bob@example.com>``. Valid means: an ASCII
    dot-atom local part of at most 64 characters; a domain of at least two DNS labels (1-63
    letters, digits or inner hyphens each) ending in an alphabetic or punycode top-level
    label; at most 254 characters in all. No quoted local parts, IP literals or DNS lookups.
    """
    name = ""
    address = value.strip()
    if "<" in address:
        m = _DISPLAY_RE.match(address)
        if m is None:
            return None
        name, address = m.group(1).strip(), m.group(2).strip()
    if len(address) > 254:
        return None
    m = _EMAIL_RE.fullmatch(address)
    if m is None:
        return None
    local, domain = m.group(1), m.group(2)
    if (len(local) > 64 or domain[0] == "-" or domain[-1] == "-" or "-." in domain
            or ".-" in domain):
        return None
    if len(domain) > 63 and any(len(label) > 63 for label in domain.split(".")):
        return None
    return name, local.lower(), domain.lower()


_SECOND_LEVEL = frozenset({"co", "com", "net", "org", "gov", "edu", "ac", "or", "ne", "go",
                           "mil", "nom", "sch", "ltd", "plc", "gob", "gv"})


def _split_url(value: str) -> Any:
    text = value.strip()
    if not text:
        return None
    if text.startswith("//"):
        text = "http:" + text
    elif "://" not in text[:16] and not text.startswith("/"):
        text = "http://" + text
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        return None
    return parts


# --------------------------------------------------------------------------- functions


@dataclass(frozen=True, slots=True)
class FunctionSpec:
    """One function of the language: its arity, missing-value rule and implementation."""

    name: str
    impl: Callable[..., Any]
    min_args: int
    max_args: int | None
    doc: str
    returns: str = "any"
    strict: bool = True  # a missing argument makes the result missing without calling impl
    pure: bool = True  # may run at compile time when every argument is a constant
    uses_now: bool = False
    check: Callable[[list[Any]], None] | None = None  # validates a constant last arg

    def arity_text(self) -> str:
        if self.max_args == self.min_args:
            n = self.min_args
            return f"{n} argument{'s' if n != 1 else ''}"
        if self.max_args is None:
            return f"at least {self.min_args} argument{'s' if self.min_args != 1 else ''}"
        return f"{self.min_args} to {self.max_args} arguments"


FUNCTIONS: dict[str, FunctionSpec] = {}
NOT_CONSTANT = object()


def function(name: str, min_args: int, max_args: int | None = -1, *, returns: str = "any",
             strict: bool = True, pure: bool = True, uses_now: bool = False,
             check: Callable[[list[Any]], None] | None = None,
             ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register an implementation; its docstring is the reference line in the docs."""

    def register(impl: Callable[..., Any]) -> Callable[..., Any]:
        FUNCTIONS[name] = FunctionSpec(
            name=name, impl=impl, min_args=min_args,
            max_args=min_args if max_args == -1 else max_args,
            doc=(impl.__doc__ or "").strip(), returns=returns, strict=strict, pure=pure,
            uses_now=uses_now, check=check,
        )
        return impl

    return register


@function("email", 1, returns="string")
def fn_email(value: Any) -> str | None:
    """The address, lowercased, if it is a valid email (``Name <addr>`` accepted); else missing."""
    parsed = parse_email(_want_str(value))
    return None if parsed is None else f"{parsed[1]}@{parsed[2]}"


@function("emaildomain", 1, returns="string")
def fn_emaildomain(value: Any) -> str | None:
    """The domain of a valid email address, lowercased; else missing."""
    parsed = parse_email(_want_str(value))
    return None if parsed is None else parsed[2]


@function("emailname", 1, returns="string")
def fn_emailname(value: Any) -> str | None:
    """The display name of ``Name <addr>``, else the local part of a valid address."""
    parsed = parse_email(_want_str(value))
    if parsed is None:
        return None
    return parsed[0] or parsed[1]


@function("tolower", 1, returns="string")
def fn_tolower(value: Any) -> str:
    """The string in lower case."""
    return _want_str(value).lower()


@function("toupper", 1, returns="string")
def fn_toupper(value: Any) -> str:
    """The string in upper case."""
    return _want_str(value).upper()


@function("trim", 1, 2, returns="string")
def fn_trim(value: Any, chars: Any = None) -> str:
    """The string without leading and trailing whitespace (or the given characters)."""
    return _want_str(value).strip(None if chars is None else _want_str(chars))


@function("contains", 2, returns="bool")
def fn_contains(container: Any, item: Any) -> bool:
    """True if the string contains the substring, the list the element, or the map the key."""
    return _member(item, container)


@function("hasprefix", 2, returns="bool")
def fn_hasprefix(value: Any, prefix: Any) -> bool:
    """True if the string starts with the prefix."""
    return _want_str(value).startswith(_want_str(prefix))


@function("hassuffix", 2, returns="bool")
def fn_hassuffix(value: Any, suffix: Any) -> bool:
    """True if the string ends with the suffix."""
    return _want_str(value).endswith(_want_str(suffix))


@function("split", 2, returns="[]string")
def fn_split(value: Any, sep: Any) -> list[str]:
    """The string cut at each separator into a list."""
    separator = _want_str(sep)
    if not separator:
        raise ExpressionError("separator is empty")
    return _want_str(value).split(separator)


@function("join", 2, None, returns="string", strict=False)
def fn_join(*args: Any) -> str | None:
    """The values (strings, numbers, lists of them) joined by the last argument; skips missing."""
    *items, sep = args
    if sep is None:
        return None
    separator = _want_str(sep)
    parts: list[str] = []
    for item in items:
        for part in item if type(item) is list else (item,):
            if part is not None:
                parts.append(_text_of(part))
    return separator.join(parts) if parts else None


@function("replace", 2, 3, returns="string")
def fn_replace(value: Any, old: Any, new: Any = "") -> str:
    """The string with every occurrence of old replaced by new (removed if new is omitted)."""
    find = _want_str(old)
    if not find:
        raise ExpressionError("the text to replace is empty")
    return _want_str(value).replace(find, _want_str(new))


@function("len", 1, returns="int")
def fn_len(value: Any) -> int:
    """The number of characters of a string, elements of a list or keys of a map."""
    if type(value) not in (str, list, dict):
        raise ExpressionError(f"expects a string, list or map, got {_show(value)}")
    return len(value)


@function("oneof", 1, None, strict=False)
def fn_oneof(*args: Any) -> Any:
    """The first argument that has a value (not missing, null or empty)."""
    for arg in args:
        if has_value(arg):
            return arg
    return None


@function("exists", 1, returns="bool", strict=False)
def fn_exists(value: Any) -> bool:
    """True if the value is there and not null, "" or empty."""
    return has_value(value)


@function("eq", 2, returns="bool")
def fn_eq(a: Any, b: Any) -> bool:
    """a = b (numbers compare by value; no other conversion)."""
    return values_equal(a, b)


@function("ne", 2, returns="bool")
def fn_ne(a: Any, b: Any) -> bool:
    """a != b."""
    return _ne(a, b)


@function("gt", 2, returns="bool")
def fn_gt(a: Any, b: Any) -> bool:
    """a > b (numbers, strings or dates, both of one kind)."""
    return _gt(a, b)


@function("ge", 2, returns="bool")
def fn_ge(a: Any, b: Any) -> bool:
    """a >= b."""
    return _ge(a, b)


@function("lt", 2, returns="bool")
def fn_lt(a: Any, b: Any) -> bool:
    """a < b."""
    return _lt(a, b)


@function("le", 2, returns="bool")
def fn_le(a: Any, b: Any) -> bool:
    """a <= b."""
    return _le(a, b)


@function("not", 1, returns="bool")
def fn_not(value: Any) -> bool:
    """The opposite of true or false (the same as the NOT operator)."""
    return _not(value)


def _check_todate(args: list[Any]) -> None:
    if len(args) == 2 and args[1] is not NOT_CONSTANT and args[1] is not None:
        strptime_layout(_want_str(args[1], "a layout string"))


@function("todate", 1, 2, returns="date", check=_check_todate)
def fn_todate(value: Any, layout: Any = None) -> datetime | None:
    """A date from ISO 8601, RFC 2822, epoch s/ms, or a strftime (%) or Go layout."""
    return to_date(value, None if layout is None else _want_str(layout, "a layout string"))


@function("now", 0, returns="date", pure=False, uses_now=True)
def fn_now(now: datetime | None) -> datetime:
    """The time of evaluation (the pipeline passes the event's processing time)."""
    return datetime.now(UTC) if now is None else _utc(now)


def _to_string(value: Any) -> str:
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
        return _utc(value).isoformat()
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      default=str)


_TRUE_WORDS = frozenset({"true", "t", "yes", "y", "1", "on"})
_FALSE_WORDS = frozenset({"false", "f", "no", "n", "0", "off"})
_FLOAT_RE = re.compile(r"^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$")


@function("toint", 1, returns="int")
def fn_toint(value: Any) -> int | None:
    """An integer from a number (truncated), numeric string, bool or date (epoch seconds)."""
    t = type(value)
    if t is int:
        return value  # type: ignore[no-any-return]
    if t is bool:
        return int(value)
    if t is float:
        return int(value) if math.isfinite(value) else None
    if t is datetime:
        return int(_utc(value).timestamp())
    text = _want_str(value, "a number, string, bool or date").strip()
    if not _FLOAT_RE.match(text):
        return None
    if text.lstrip("+-").isdigit():
        return int(text)
    number = float(text)
    return int(number) if math.isfinite(number) else None


@function("tonumber", 1, returns="number")
def fn_tonumber(value: Any) -> float | None:
    """A number from a number, numeric string, bool or date (epoch seconds)."""
    t = type(value)
    if t in _NUMBER_TYPES or t is bool:
        number = float(value)
        return number if math.isfinite(number) else None
    if t is datetime:
        return _utc(value).timestamp()
    text = _want_str(value, "a number, string, bool or date").strip()
    return float(text) if _FLOAT_RE.match(text) else None


@function("tobool", 1, returns="bool")
def fn_tobool(value: Any) -> bool | None:
    """true/false from a bool, a number (0 is false) or words like "yes", "off", "1"."""
    t = type(value)
    if t is bool:
        return value  # type: ignore[no-any-return]
    if t in _NUMBER_TYPES:
        return value != 0
    word = _want_str(value, "a bool, number or string").strip().lower()
    if word in _TRUE_WORDS:
        return True
    if word in _FALSE_WORDS:
        return False
    return None


@function("tostring", 1, returns="string")
def fn_tostring(value: Any) -> str:
    """The value as text: true/false, digits, ISO dates, lists and maps as JSON."""
    return _to_string(value)


@function("url", 1, returns="string")
def fn_url(value: Any) -> str | None:
    """The URL normalised: scheme (http:// if none) and host lowercased, fragment dropped."""
    parts = _split_url(_want_str(value))
    if parts is None or not parts.hostname:
        return None
    host = parts.hostname + (f":{parts.port}" if parts.port else "")
    query = f"?{parts.query}" if parts.query else ""
    return f"{parts.scheme.lower()}://{host}{parts.path}{query}"


@function("urlmain", 1, returns="string")
def fn_urlmain(value: Any) -> str | None:
    """Host and path of a URL, without scheme, port, query or fragment."""
    parts = _split_url(_want_str(value))
    if parts is None or not parts.hostname:
        return None
    return f"{parts.hostname}{parts.path}"


@function("host", 1, returns="string")
def fn_host(value: Any) -> str | None:
    """The host name of a URL, lowercased, without port."""
    parts = _split_url(_want_str(value))
    return None if parts is None or not parts.hostname else parts.hostname


@function("domain", 1, returns="string")
def fn_domain(value: Any) -> str | None:
    """The registrable domain of a URL's host: the last two labels, three under co.uk-style."""
    host = fn_host(value)
    if host is None:
        return None
    labels = host.split(".")
    if labels[-1].isdigit() or len(labels) <= 2:
        return host
    keep = 3 if labels[-2] in _SECOND_LEVEL and len(labels[-1]) == 2 else 2
    return ".".join(labels[-keep:])


@function("path", 1, returns="string")
def fn_path(value: Any) -> str | None:
    """The path of a URL ("/" for a bare host); a value starting with / is a path already."""
    parts = _split_url(_want_str(value))
    if parts is None:
        return None
    if parts.path:
        return parts.path  # type: ignore[no-any-return]
    return "/" if parts.hostname else None


@function("qs", 2, returns="string")
def fn_qs(value: Any, name: Any) -> str | None:
    """The first value of a query-string parameter of a URL (missing if absent or empty)."""
    text = _want_str(value).split("#", 1)[0]
    if "?" not in text:
        return None
    found = parse_qs(text.split("?", 1)[1], keep_blank_values=True).get(_want_str(name))
    return found[0] if found and found[0] else None


@function("urldecode", 1, returns="string")
def fn_urldecode(value: Any) -> str:
    """The string with %XX escapes and + decoded."""
    return unquote_plus(_want_str(value))


_UA_PARTS = ("browser", "browser_version", "os", "os_version", "device", "mobile")
_MOBILE_OS = frozenset({"iOS", "Android", "Windows Phone", "BlackBerry OS", "KaiOS",
                        "Symbian OS", "Firefox OS"})


@functools.lru_cache(maxsize=4096)
def _user_agent(text: str) -> dict[str, Any]:
    parsed = ua_parser.parse(text).with_defaults()
    agent, os_, device = parsed.user_agent, parsed.os, parsed.device

    def version(*parts: str | None) -> str | None:
        return ".".join(p for p in parts if p) or None

    return {
        "browser": agent.family,
        "browser_version": version(agent.major, agent.minor, agent.patch),
        "os": os_.family,
        "os_version": version(os_.major, os_.minor, os_.patch),
        "device": device.family,
        # MDN's advice: "Mobi" anywhere in the string; also phones' own OSes, tablets aside.
        "mobile": "Mobi" in text or (os_.family in _MOBILE_OS and device.family != "iPad"
                                     and "Tablet" not in text),
    }


def _check_useragent(args: list[Any]) -> None:
    part = args[1]
    if part is not NOT_CONSTANT and part not in _UA_PARTS:
        raise ExpressionError(f"unknown part {part!r}; use one of {', '.join(_UA_PARTS)}")


@function("useragent", 2, check=_check_useragent)
def fn_useragent(value: Any, part: Any) -> Any:
    """A part of a user-agent string: browser, browser_version, os, os_version, device, mobile."""
    if part not in _UA_PARTS:
        raise ExpressionError(f"unknown part {part!r}; use one of {', '.join(_UA_PARTS)}")
    text = _want_str(value).strip()
    return _user_agent(text)[part] if text else None


@function("hash.sha256", 1, returns="string")
def fn_sha256(value: Any) -> str:
    """The SHA-256 hex digest of the UTF-8 text (numbers hashed as their digits)."""
    return hashlib.sha256(_text_of(value).encode()).hexdigest()


@function("hash.md5", 1, returns="string")
def fn_md5(value: Any) -> str:
    """The MD5 hex digest of the UTF-8 text, for matching partners' hashed ids."""
    return hashlib.md5(_text_of(value).encode(), usedforsecurity=False).hexdigest()


def _first_chars(items: Any) -> set[int] | None:
    """The characters a regex piece can start with; None when it could be any (or none)."""
    from re import _constants as c  # type: ignore[attr-defined]

    if not items:
        return None
    op, av = items[0]
    if op is c.LITERAL:
        return {av}
    if op is c.IN:
        chars: set[int] = set()
        for kind, arg in av:
            if kind is c.LITERAL:
                chars.add(arg)
            elif kind is c.RANGE and arg[1] - arg[0] < 256:
                chars.update(range(arg[0], arg[1] + 1))
            else:  # a category (\w), a negation, a huge range
                return None
        return chars
    if op is c.SUBPATTERN:
        return _first_chars(av[3])
    if op in (c.MAX_REPEAT, c.MIN_REPEAT) and av[0] > 0:
        return _first_chars(av[2])
    if op is c.BRANCH:
        found: set[int] = set()
        for alt in av[1]:
            first = _first_chars(alt)
            if first is None:
                return None
            found |= first
        return found
    return None


def _ambiguous_alternatives(alternatives: list[Any]) -> bool:
    """Whether two alternatives may start alike: (a|aa), (ab|a), (|a)."""
    seen: set[int] = set()
    for alt in alternatives:
        first = _first_chars(alt)
        if first is None or seen & first:
            return True
        seen |= first
    return False


def _slow_pattern(items: Any, inside: bool = False) -> bool:
    """True for the shapes that make a backtracking regex take exponential time.

    Python's ``re`` backtracks, so a variable-length repeat inside another repeat
    ((a+)+, (\\w+\\s?)*) or a repeated choice whose alternatives can start alike
    ((a|aa)+) can take exponential time on a hostile input; we refuse such patterns
    instead of timing them out. ``inside`` says whether we are within a repeat.
    """
    from re import _constants as c  # type: ignore[attr-defined]

    repeats = {c.MAX_REPEAT, c.MIN_REPEAT, getattr(c, "POSSESSIVE_REPEAT", c.MAX_REPEAT)}
    for op, av in items:
        if op in repeats:
            low, high, sub = av
            variable = high != low and high > 1  # b? is harmless, b+ and b{1,9} are not
            if inside and variable:
                return True
            if _slow_pattern(sub, inside or high > 1):
                return True
        elif op is c.SUBPATTERN:
            if _slow_pattern(av[3], inside):
                return True
        elif op is c.BRANCH:
            if inside and _ambiguous_alternatives(av[1]):
                return True
            if any(_slow_pattern(alt, inside) for alt in av[1]):
                return True
        elif op in (c.ASSERT, c.ASSERT_NOT):
            if _slow_pattern(av[1], inside):
                return True
        elif op is getattr(c, "ATOMIC_GROUP", None) and _slow_pattern(av, inside):
            return True
    return False


@functools.lru_cache(maxsize=512)
def compile_pattern(pattern: str) -> re.Pattern[str]:
    """A match() pattern compiled once, refused if too long, invalid or catastrophic."""
    if len(pattern) > MAX_PATTERN_LENGTH:
        raise ExpressionError(f"pattern is longer than {MAX_PATTERN_LENGTH} characters")
    try:
        compiled = re.compile(pattern)
    except re.error as exc:
        raise ExpressionError(f"invalid pattern: {exc}") from None
    try:
        from re import _parser  # type: ignore[attr-defined]

        nested = _slow_pattern(_parser.parse(pattern))
    except (ImportError, AttributeError):  # a Python without re._parser: textual fallback
        nested = re.search(r"[+*}]\)[+*{]", pattern) is not None
    if nested:
        raise ExpressionError(
            "pattern repeats a repetition or an ambiguous choice (like (a+)+ or (a|aa)+), "
            "which can take exponential time")
    return compiled


def _check_match(args: list[Any]) -> None:
    if args[1] is not NOT_CONSTANT and args[1] is not None:
        compile_pattern(_want_str(args[1], "a pattern string"))


@function("match", 2, returns="bool", check=_check_match)
def fn_match(value: Any, pattern: Any) -> bool:
    """True if the regular expression (Python re, searched anywhere) matches the string."""
    text = _want_str(value)
    if len(text) > MAX_MATCH_INPUT:
        raise ExpressionError(f"text is longer than {MAX_MATCH_INPUT} characters")
    return compile_pattern(_want_str(pattern, "a pattern string")).search(text) is not None


@function("mapkeys", 1, returns="[]string")
def fn_mapkeys(value: Any) -> list[str]:
    """The keys of a map, sorted."""
    if type(value) is not dict:
        raise ExpressionError(f"expects a map, got {_show(value)}")
    return sorted(value)


def _dedupe_key(value: Any) -> Any:
    t = type(value)
    if t in (str, bool, int, float):
        return (t is bool, value)
    return ("json", _to_string(value))


@function("set", 1, None, returns="[]string", strict=False)
def fn_set(*args: Any) -> list[Any] | None:
    """The distinct values of the arguments (lists flattened), first seen first; skips missing."""
    seen: set[Any] = set()
    out: list[Any] = []
    for arg in args:
        for item in arg if type(arg) is list else (arg,):
            if not has_value(item):
                continue
            key = _dedupe_key(item)
            if key not in seen:
                seen.add(key)
                out.append(item)
    return out or None


@function("map", 2, returns="map")
def fn_map(key: Any, value: Any) -> dict[str, Any]:
    """A one-key map {key: value}, for map fields (``map(category, 1)`` with mapsum)."""
    if type(key) not in (str, int, float, bool):
        raise ExpressionError(f"map keys are strings or numbers, got {_show(key)}")
    return {_to_string(key): value}


@function("count", 1, returns="int", strict=False)
def fn_count(value: Any) -> int | None:
    """1 if the value is there (missing otherwise): with merge ``sum`` it counts events."""
    return 1 if has_value(value) else None


def _number_of(value: Any) -> int | float:
    t = type(value)
    if t in _NUMBER_TYPES:
        return value  # type: ignore[no-any-return]
    if t is str and _FLOAT_RE.match(value.strip()):
        text = value.strip()
        return int(text) if text.lstrip("+-").isdigit() else float(text)
    raise ExpressionError(f"expects numbers, got {_show(value)}")


@function("sum", 1, None, returns="number", strict=False)
def fn_sum(*args: Any) -> int | float | None:
    """The sum of the numbers (lists flattened, numeric strings read); skips missing."""
    total: int | float = 0
    seen = False
    for arg in args:
        for item in arg if type(arg) is list else (arg,):
            if item is not None:
                total += _number_of(item)
                seen = True
    return total if seen else None


# --------------------------------------------------------------------------- compiler


class _Code(NamedTuple):
    fn: Evaluator
    constant: bool
    value: Any  # the value when constant


def _const(value: Any) -> _Code:
    """A constant; lists and maps are copied per evaluation so callers may change results."""
    if type(value) in (list, dict):
        items = value.values() if type(value) is dict else value
        copy = copy_module.deepcopy if any(type(i) in (list, dict) for i in items) else type(
            value).copy
        return _Code(lambda ev, now: copy(value), True, value)
    return _Code(lambda ev, now: value, True, value)


def _walk(obj: Any, segments: tuple[str | int, ...], keys: tuple[tuple[str, ...], ...],
          i: int) -> Any:
    """Follow segments from i, trying flat keys (``"origin.email"``) before nesting."""
    n = len(segments)
    while i < n:
        seg = segments[i]
        t = type(obj)
        if t is dict:
            row = keys[i]
            for j in range(n, i + 1, -1):  # the longest flat key first
                key = row[j]
                if key in obj:
                    found = _walk(obj[key], segments, keys, j)
                    if found is not None:
                        return found
            if type(seg) is int:
                return None
            obj = obj.get(seg)
        elif t is list and type(seg) is int:
            if -len(obj) <= seg < len(obj):
                obj = obj[seg]
            else:
                return None
        else:
            return None
        if obj is None:
            return None
        i += 1
    return obj


def _compile_path(node: Path) -> _Code:
    segments = node.segments
    flat = node.text
    if len(segments) == 1 and isinstance(segments[0], str):
        key = segments[0]

        def get(ev: Any, now: datetime | None) -> Any:
            return ev.get(key)

        return _Code(get, False, None)
    if len(segments) == 2 and all(isinstance(s, str) for s in segments):
        first, second = segments

        def get2(ev: Any, now: datetime | None) -> Any:
            found = ev.get(flat)
            if found is not None:
                return found
            inner = ev.get(first)
            return inner.get(second) if type(inner) is dict else None

        return _Code(get2, False, None)
    n = len(segments)
    keys = tuple(
        tuple(_render(segments[i:j]) if j > i else "" for j in range(n + 1)) for i in range(n)
    )

    def walk(ev: Any, now: datetime | None) -> Any:
        found = ev.get(flat)
        if found is not None:
            return found
        return _walk(ev, segments, keys, 0)

    return _Code(walk, False, None)


class _Compiler:
    """AST to closures, with the checks that make a bad expression fail at compile time."""

    def __init__(self) -> None:
        self.fields: set[str] = set()
        self.functions: set[str] = set()

    def compile(self, node: Node, depth: int = 0) -> _Code:
        if depth > MAX_DEPTH:
            raise ExpressionSyntaxError("expression nests too deeply", node.line, node.column)
        if isinstance(node, Literal):
            return _const(node.value)
        if isinstance(node, Path):
            self.fields.add(node.text)
            return _compile_path(node)
        if isinstance(node, Call):
            return self._call(node, depth)
        if isinstance(node, ListNode):
            return self._list(node, depth)
        if isinstance(node, Unary):
            return self._unary(node, depth)
        if isinstance(node, Binary):
            return self._binary(node, depth)
        if isinstance(node, Logical):
            return self._logical(node, depth)
        raise TypeError(f"unknown node {node!r}")  # pragma: no cover

    def _fold(self, node: Node, fn: Evaluator) -> _Code:
        """Run a constant sub-expression now; its errors become compile errors."""
        try:
            value = fn({}, None)
        except ExpressionError as exc:
            reason = f"{exc.label}: {exc.reason}" if exc.label else exc.reason
            raise ExpressionSyntaxError(reason, node.line, node.column) from None
        return _const(value)

    def _call(self, node: Call, depth: int) -> _Code:
        spec = FUNCTIONS.get(node.name)
        if spec is None:
            close = difflib.get_close_matches(node.name, FUNCTIONS, n=1)
            raise ExpressionSyntaxError(f"unknown function '{node.name}'", node.line,
                                        node.column,
                                        f"did you mean '{close[0]}'?" if close else None)
        n = len(node.args)
        if n < spec.min_args or (spec.max_args is not None and n > spec.max_args):
            raise ExpressionSyntaxError(
                f"{spec.name}() takes {spec.arity_text()}, got {n}", node.line, node.column)
        self.functions.add(spec.name)
        args = [self.compile(a, depth + 1) for a in node.args]
        if spec.check is not None:
            try:
                spec.check([a.value if a.constant else NOT_CONSTANT for a in args])
            except ExpressionError as exc:
                # every check validates the last argument (layout, part, pattern)
                where = node.args[-1] if args[-1].constant else node
                raise ExpressionSyntaxError(f"{spec.name}(): {exc.reason}", where.line,
                                            where.column) from None
        fn = self._call_closure(spec, [a.fn for a in args], node.line, node.column)
        if spec.pure and all(a.constant for a in args):
            return self._fold(node, fn)
        return _Code(fn, False, None)

    @staticmethod
    def _call_closure(spec: FunctionSpec, fns: list[Evaluator], line: int, column: int
                      ) -> Evaluator:
        impl = spec.impl
        label = f"{spec.name}()"
        if spec.uses_now:
            def call_now(ev: Any, now: datetime | None) -> Any:
                return impl(now)

            return call_now
        if spec.strict and len(fns) == 1:
            f0 = fns[0]

            def call1(ev: Any, now: datetime | None) -> Any:
                a = f0(ev, now)
                if a is None:
                    return None
                try:
                    return impl(a)
                except ExpressionError as exc:
                    raise exc.located(label, line, column) from None

            return call1
        if spec.strict and len(fns) == 2:
            f0, f1 = fns

            def call2(ev: Any, now: datetime | None) -> Any:
                a = f0(ev, now)
                if a is None:
                    return None
                b = f1(ev, now)
                if b is None:
                    return None
                try:
                    return impl(a, b)
                except ExpressionError as exc:
                    raise exc.located(label, line, column) from None

            return call2
        strict = spec.strict

        def call(ev: Any, now: datetime | None) -> Any:
            values = [f(ev, now) for f in fns]
            if strict and None in values:
                return None
            try:
                return impl(*values)
            except ExpressionError as exc:
                raise exc.located(label, line, column) from None

        return call

    def _list(self, node: ListNode, depth: int) -> _Code:
        items = [self.compile(i, depth + 1) for i in node.items]
        if all(i.constant for i in items):
            return _const([i.value for i in items])
        fns = [i.fn for i in items]

        def make_list(ev: Any, now: datetime | None) -> Any:
            return [f(ev, now) for f in fns]

        return _Code(make_list, False, None)

    def _unary(self, node: Unary, depth: int) -> _Code:
        operand = self.compile(node.operand, depth + 1)
        impl = {"-": _neg, "+": _plus, "not": _not}[node.op]
        label = "NOT" if node.op == "not" else f"unary {node.op}"
        line, column = node.line, node.column
        f0 = operand.fn

        def unary(ev: Any, now: datetime | None) -> Any:
            a = f0(ev, now)
            if a is None:
                return None
            try:
                return impl(a)
            except ExpressionError as exc:
                raise exc.located(label, line, column) from None

        if operand.constant:
            return self._fold(node, unary)
        return _Code(unary, False, None)

    def _binary(self, node: Binary, depth: int) -> _Code:
        left = self.compile(node.left, depth + 1)
        right = self.compile(node.right, depth + 1)
        label = node.op.upper() if node.op[0].isalpha() else node.op
        line, column = node.line, node.column
        fl, fr = left.fn, right.fn
        if (node.op in ("in", "not in") and right.constant and type(right.value) is list
                and right.value and all(type(v) is str for v in right.value)):
            choices = frozenset(right.value)
            negate = node.op == "not in"

            def in_strings(ev: Any, now: datetime | None) -> Any:
                a = fl(ev, now)
                if a is None:
                    return None
                return (type(a) is str and a in choices) is not negate

            code = in_strings
        else:
            impl = _BINARY_IMPLS[node.op]

            def binary(ev: Any, now: datetime | None) -> Any:
                a = fl(ev, now)
                if a is None:
                    return None
                b = fr(ev, now)
                if b is None:
                    return None
                try:
                    return impl(a, b)
                except ExpressionError as exc:
                    raise exc.located(label, line, column) from None

            code = binary
        if left.constant and right.constant:
            return self._fold(node, code)
        return _Code(code, False, None)

    def _logical(self, node: Logical, depth: int) -> _Code:
        operands = [self.compile(o, depth + 1) for o in node.operands]
        fns = tuple(o.fn for o in operands)
        label = node.op.upper()
        where = f"{label} at {node.line}:{node.column}"
        # Kleene logic: AND stops at false, OR at true; missing makes the result missing
        # only when no operand decides it.
        stop = node.op == "or"

        def logical(ev: Any, now: datetime | None) -> Any:
            unknown = False
            for f in fns:
                v = f(ev, now)
                if v is stop:
                    return stop
                if v is None:
                    unknown = True
                elif v is not (not stop):
                    raise ExpressionError(f"expects true or false, got {_show(v)}", where,
                                          label)
            return None if unknown else not stop

        if all(o.constant for o in operands):
            return self._fold(node, logical)
        return _Code(logical, False, None)


_RESULT_TYPES = {"=": "bool", "!=": "bool", "<": "bool", "<=": "bool", ">": "bool", ">=": "bool",
                 "in": "bool", "not in": "bool", "contains": "bool"}


def _result_type(node: Node) -> str:
    """What an expression produces, as far as can be told without data (for field checks)."""
    if isinstance(node, Literal):
        v = node.value
        return "any" if v is None else {str: "string", bool: "bool", int: "int",
                                        float: "number"}.get(type(v), "any")
    if isinstance(node, Call):
        return FUNCTIONS[node.name].returns
    if isinstance(node, Logical) or (isinstance(node, Unary) and node.op == "not"):
        return "bool"
    if isinstance(node, ListNode):
        return "list"
    if isinstance(node, Unary):
        return _result_type(node.operand)
    if isinstance(node, Binary):
        if node.op in _RESULT_TYPES:
            return "bool"
        sides = {_result_type(node.left), _result_type(node.right)}
        if node.op == "/" and sides <= {"int", "number"}:
            return "number"
        if sides == {"int"}:
            return "int"
        if sides <= {"int", "number"}:
            return "number"
        if sides == {"string"} and node.op == "+":
            return "string"
    return "any"


class Expression:
    """A compiled expression: evaluate it against events as often as needed."""

    __slots__ = ("_fn", "ast", "fields_read", "functions_used", "result_type", "text")

    def __init__(self, text: str, ast: Node, fn: Evaluator, fields_read: frozenset[str],
                 functions_used: frozenset[str]) -> None:
        self.text = text
        self.ast = ast
        self._fn = fn
        self.fields_read = fields_read
        self.functions_used = functions_used
        self.result_type = _result_type(ast)

    def __repr__(self) -> str:
        return f"Expression({self.text!r})"

    def evaluate(self, event: Mapping[str, Any], now: datetime | None = None) -> Any:
        """The value for one event: None when missing; ExpressionError for a bad value."""
        try:
            return self._fn(event, now)
        except ExpressionError:
            raise
        except (TypeError, ValueError, AttributeError, KeyError, IndexError, OverflowError,
                ZeroDivisionError, RecursionError) as exc:
            raise ExpressionError(f"cannot evaluate {self.text!r}: {exc}") from exc

    def matches(self, event: Mapping[str, Any], now: datetime | None = None) -> bool:
        """For guards and route rules: True only when the value is true; missing is False."""
        value = self.evaluate(event, now)
        if value is None or value is False:
            return False
        if value is True:
            return True
        raise ExpressionError(f"a condition must be true or false, got {_show(value)}",
                              f"{self.text!r}")


@functools.lru_cache(maxsize=2048)
def compile_expression(text: str) -> Expression:
    """Parse, check and compile; ExpressionSyntaxError (with line and column) if refused."""
    ast = parse(text)
    compiler = _Compiler()
    code = compiler.compile(ast)
    return Expression(text, ast, code.fn, frozenset(compiler.fields),
                      frozenset(compiler.functions))
