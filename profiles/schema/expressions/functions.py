"""The functions of the language: a registry (``FUNCTIONS``) and every implementation.

Each function is registered with ``@function(name, min_args, max_args, ...)``: its arity, the
type it returns (for the schema's field checks), whether a missing argument makes the result
missing without calling it (``strict``), whether it may run at compile time on constant
arguments (``pure``), and an optional ``check`` of a constant last argument (a date layout, a
user-agent part, a pattern) so a bad one is refused when the expression is compiled. Its
docstring is the reference line in docs/expressions.md.
"""

from __future__ import annotations

import functools
import hashlib
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import SplitResult, parse_qs, unquote_plus, urlsplit

import ua_parser

from profiles.schema.expressions.errors import ExpressionError
from profiles.schema.expressions.values import (
    NUMBER_TYPES,
    ge,
    gt,
    has_value,
    le,
    lt,
    member,
    ne,
    not_,
    show_value,
    strptime_layout,
    text_of,
    to_date,
    to_string,
    to_utc,
    values_equal,
    want_str,
)

__all__ = [
    "FUNCTIONS",
    "MAX_MATCH_INPUT",
    "MAX_PATTERN_LENGTH",
    "NOT_CONSTANT",
    "FunctionSpec",
    "compile_pattern",
    "function",
    "parse_email",
]

MAX_PATTERN_LENGTH = 256
MAX_MATCH_INPUT = 10_000


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


def _split_url(value: str) -> SplitResult | None:
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


_Impl = TypeVar("_Impl", bound=Callable[..., Any])


def function(name: str, min_args: int, max_args: int | None = -1, *, returns: str = "any",
             strict: bool = True, pure: bool = True, uses_now: bool = False,
             check: Callable[[list[Any]], None] | None = None,
             ) -> Callable[[_Impl], _Impl]:
    """Register an implementation; its docstring is the reference line in the docs."""

    def register(impl: _Impl) -> _Impl:
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
    parsed = parse_email(want_str(value))
    return None if parsed is None else f"{parsed[1]}@{parsed[2]}"


@function("emaildomain", 1, returns="string")
def fn_emaildomain(value: Any) -> str | None:
    """The domain of a valid email address, lowercased; else missing."""
    parsed = parse_email(want_str(value))
    return None if parsed is None else parsed[2]


@function("emailname", 1, returns="string")
def fn_emailname(value: Any) -> str | None:
    """The display name of ``Name <addr>``, else the local part of a valid address."""
    parsed = parse_email(want_str(value))
    if parsed is None:
        return None
    return parsed[0] or parsed[1]


@function("tolower", 1, returns="string")
def fn_tolower(value: Any) -> str:
    """The string in lower case."""
    return want_str(value).lower()


@function("toupper", 1, returns="string")
def fn_toupper(value: Any) -> str:
    """The string in upper case."""
    return want_str(value).upper()


@function("trim", 1, 2, returns="string")
def fn_trim(value: Any, chars: Any = None) -> str:
    """The string without leading and trailing whitespace (or the given characters)."""
    return want_str(value).strip(None if chars is None else want_str(chars))


@function("contains", 2, returns="bool")
def fn_contains(container: Any, item: Any) -> bool:
    """True if the string contains the substring, the list the element, or the map the key."""
    return member(item, container)


@function("hasprefix", 2, returns="bool")
def fn_hasprefix(value: Any, prefix: Any) -> bool:
    """True if the string starts with the prefix."""
    return want_str(value).startswith(want_str(prefix))


@function("hassuffix", 2, returns="bool")
def fn_hassuffix(value: Any, suffix: Any) -> bool:
    """True if the string ends with the suffix."""
    return want_str(value).endswith(want_str(suffix))


@function("split", 2, returns="[]string")
def fn_split(value: Any, sep: Any) -> list[str]:
    """The string cut at each separator into a list."""
    separator = want_str(sep)
    if not separator:
        raise ExpressionError("separator is empty")
    return want_str(value).split(separator)


@function("join", 2, None, returns="string", strict=False)
def fn_join(*args: Any) -> str | None:
    """The values (strings, numbers, lists of them) joined by the last argument; skips missing."""
    *items, sep = args
    if sep is None:
        return None
    separator = want_str(sep)
    parts: list[str] = []
    for item in items:
        for part in item if type(item) is list else (item,):
            if part is not None:
                parts.append(text_of(part))
    return separator.join(parts) if parts else None


@function("replace", 2, 3, returns="string")
def fn_replace(value: Any, old: Any, new: Any = "") -> str:
    """The string with every occurrence of old replaced by new (removed if new is omitted)."""
    find = want_str(old)
    if not find:
        raise ExpressionError("the text to replace is empty")
    return want_str(value).replace(find, want_str(new))


@function("len", 1, returns="int")
def fn_len(value: Any) -> int:
    """The number of characters of a string, elements of a list or keys of a map."""
    if type(value) not in (str, list, dict):
        raise ExpressionError(f"expects a string, list or map, got {show_value(value)}")
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
    return ne(a, b)


@function("gt", 2, returns="bool")
def fn_gt(a: Any, b: Any) -> bool:
    """a > b (numbers, strings or dates, both of one kind)."""
    return gt(a, b)


@function("ge", 2, returns="bool")
def fn_ge(a: Any, b: Any) -> bool:
    """a >= b."""
    return ge(a, b)


@function("lt", 2, returns="bool")
def fn_lt(a: Any, b: Any) -> bool:
    """a < b."""
    return lt(a, b)


@function("le", 2, returns="bool")
def fn_le(a: Any, b: Any) -> bool:
    """a <= b."""
    return le(a, b)


@function("not", 1, returns="bool")
def fn_not(value: Any) -> bool:
    """The opposite of true or false (the same as the NOT operator)."""
    return not_(value)


def _check_todate(args: list[Any]) -> None:
    if len(args) == 2 and args[1] is not NOT_CONSTANT and args[1] is not None:
        strptime_layout(want_str(args[1], "a layout string"))


@function("todate", 1, 2, returns="date", check=_check_todate)
def fn_todate(value: Any, layout: Any = None) -> datetime | None:
    """A date from ISO 8601, RFC 2822, epoch s/ms, or a strftime (%) or Go layout."""
    return to_date(value, None if layout is None else want_str(layout, "a layout string"))


@function("now", 0, returns="date", pure=False, uses_now=True)
def fn_now(now: datetime | None) -> datetime:
    """The time of evaluation (the pipeline passes the event's processing time)."""
    return datetime.now(UTC) if now is None else to_utc(now)


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
        return int(to_utc(value).timestamp())
    text = want_str(value, "a number, string, bool or date").strip()
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
    if t in NUMBER_TYPES or t is bool:
        number = float(value)
        return number if math.isfinite(number) else None
    if t is datetime:
        return to_utc(value).timestamp()
    text = want_str(value, "a number, string, bool or date").strip()
    return float(text) if _FLOAT_RE.match(text) else None


@function("tobool", 1, returns="bool")
def fn_tobool(value: Any) -> bool | None:
    """true/false from a bool, a number (0 is false) or words like "yes", "off", "1"."""
    t = type(value)
    if t is bool:
        return value  # type: ignore[no-any-return]
    if t in NUMBER_TYPES:
        return bool(value != 0)
    word = want_str(value, "a bool, number or string").strip().lower()
    if word in _TRUE_WORDS:
        return True
    if word in _FALSE_WORDS:
        return False
    return None


@function("tostring", 1, returns="string")
def fn_tostring(value: Any) -> str:
    """The value as text: true/false, digits, ISO dates, lists and maps as JSON."""
    return to_string(value)


@function("url", 1, returns="string")
def fn_url(value: Any) -> str | None:
    """The URL normalised: scheme (http:// if none) and host lowercased, fragment dropped."""
    parts = _split_url(want_str(value))
    if parts is None or not parts.hostname:
        return None
    host = parts.hostname + (f":{parts.port}" if parts.port else "")
    query = f"?{parts.query}" if parts.query else ""
    return f"{parts.scheme.lower()}://{host}{parts.path}{query}"


@function("urlmain", 1, returns="string")
def fn_urlmain(value: Any) -> str | None:
    """Host and path of a URL, without scheme, port, query or fragment."""
    parts = _split_url(want_str(value))
    if parts is None or not parts.hostname:
        return None
    return f"{parts.hostname}{parts.path}"


@function("host", 1, returns="string")
def fn_host(value: Any) -> str | None:
    """The host name of a URL, lowercased, without port."""
    parts = _split_url(want_str(value))
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
    parts = _split_url(want_str(value))
    if parts is None:
        return None
    if parts.path:
        return parts.path
    return "/" if parts.hostname else None


@function("qs", 2, returns="string")
def fn_qs(value: Any, name: Any) -> str | None:
    """The first value of a query-string parameter of a URL (missing if absent or empty)."""
    text = want_str(value).split("#", 1)[0]
    if "?" not in text:
        return None
    found = parse_qs(text.split("?", 1)[1], keep_blank_values=True).get(want_str(name))
    return found[0] if found and found[0] else None


@function("urldecode", 1, returns="string")
def fn_urldecode(value: Any) -> str:
    """The string with %XX escapes and + decoded."""
    return unquote_plus(want_str(value))


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
    text = want_str(value).strip()
    return _user_agent(text)[part] if text else None


@function("hash.sha256", 1, returns="string")
def fn_sha256(value: Any) -> str:
    """The SHA-256 hex digest of the UTF-8 text (numbers hashed as their digits)."""
    return hashlib.sha256(text_of(value).encode()).hexdigest()


@function("hash.md5", 1, returns="string")
def fn_md5(value: Any) -> str:
    """The MD5 hex digest of the UTF-8 text, for matching partners' hashed ids."""
    return hashlib.md5(text_of(value).encode(), usedforsecurity=False).hexdigest()


def _first_chars(items: Any) -> set[int] | None:
    """The characters a regex piece can start with; None when it could be any (or none)."""
    from re import _constants as c

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
    from re import _constants as c

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
        from re import _parser

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
        compile_pattern(want_str(args[1], "a pattern string"))


@function("match", 2, returns="bool", check=_check_match)
def fn_match(value: Any, pattern: Any) -> bool:
    """True if the regular expression (Python re, searched anywhere) matches the string."""
    text = want_str(value)
    if len(text) > MAX_MATCH_INPUT:
        raise ExpressionError(f"text is longer than {MAX_MATCH_INPUT} characters")
    return compile_pattern(want_str(pattern, "a pattern string")).search(text) is not None


@function("mapkeys", 1, returns="[]string")
def fn_mapkeys(value: Any) -> list[str]:
    """The keys of a map, sorted."""
    if type(value) is not dict:
        raise ExpressionError(f"expects a map, got {show_value(value)}")
    return sorted(value)


def _dedupe_key(value: Any) -> Any:
    t = type(value)
    if t in (str, bool, int, float):
        return (t is bool, value)
    return ("json", to_string(value))


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
        raise ExpressionError(f"map keys are strings or numbers, got {show_value(key)}")
    return {to_string(key): value}


@function("count", 1, returns="int", strict=False)
def fn_count(value: Any) -> int | None:
    """1 if the value is there (missing otherwise): with merge ``sum`` it counts events."""
    return 1 if has_value(value) else None


def _number_of(value: Any) -> int | float:
    t = type(value)
    if t in NUMBER_TYPES:
        return value  # type: ignore[no-any-return]
    if t is str and _FLOAT_RE.match(value.strip()):
        text = value.strip()
        return int(text) if text.lstrip("+-").isdigit() else float(text)
    raise ExpressionError(f"expects numbers, got {show_value(value)}")


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
