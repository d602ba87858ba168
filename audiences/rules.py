"""Audience rules: the JSON tree, its operators and its validation against the live schema.

A rule is plain JSON (docs/audiences.md). It never reaches SQL as it is: ``validate_rule``
checks every node against an allowlist built from the published schema (field names and their
types, calculated attributes) and the operator registry below, and ``audiences.compiler``
turns only validated rules into SQL and Python predicates of its own making.
"""

from __future__ import annotations

import calendar
import math
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

MAX_DEPTH = 20
MAX_LIST = 1000

# ------------------------------------------------------------------------------ value kinds

# A field type is read through one "kind": the operators and values that make sense for it.
KIND_OF_TYPE: dict[str, str] = {
    "string": "text", "int": "numeric", "number": "numeric", "bool": "bool", "date": "date",
    "[]string": "set", "map[string]int": "map", "map[string]number": "map",
    "map[string]string": "map", "map[string]date": "map",
}
# Event properties are untyped: a property condition names its type (or takes its value's).
PROPERTY_TYPES = ("string", "number", "bool", "date")


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

# ------------------------------------------------------------------------------ relative dates

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


def resolve_date(value: str, now: datetime) -> datetime:
    """A rule's date value as a UTC instant: ISO 8601 (a bare date is midnight UTC) or
    ``now``, ``now-30d``, ``now+2w`` (units h d w M y; M and y are calendar months and years,
    the day clamped to the month's end). Raises ValueError for anything else."""
    text = value.strip()
    found = _RELATIVE.match(text)
    if found:
        now = now.astimezone(UTC)
        if not found.group(1):
            return now
        amount = int(found.group(2)) * (-1 if found.group(1) == "-" else 1)
        return _UNITS[found.group(3)](now, amount)
    if not _ISO.match(text):
        raise ValueError(f"{value!r} is not a date (ISO 8601, or now-30d with units h d w M y)")
    at = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


# ------------------------------------------------------------------------------ schema, errors


@dataclass(frozen=True)
class RuleSchema:
    """The allowlist a rule is checked against: published fields and calculated attributes,
    each with its type (profiles.models.FIELD_TYPE_CHOICES)."""

    fields: Mapping[str, str]
    attributes: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_compiled(cls, compiled: Any, attributes: Mapping[str, str] | None = None
                      ) -> RuleSchema:
        """From ``profiles.schema.drafts.live_schema(account)`` (None: no published schema)."""
        fields = {} if compiled is None else {n: f.type for n, f in compiled.fields.items()}
        return cls(fields, dict(attributes or {}))


@dataclass(frozen=True)
class RuleProblem:
    path: str
    code: str
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {"path": self.path, "code": self.code, "message": self.message}


@dataclass(frozen=True)
class TextProblem(RuleProblem):
    """A syntax error in a rule's text form, with where it is."""

    line: int = 0
    column: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {**super().as_dict(), "line": self.line, "column": self.column}


class RuleError(ValueError):
    """A rule that cannot be used; ``problems`` says where (JSON path) and why."""

    def __init__(self, problems: list[RuleProblem]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{p.path}: {p.message}" for p in problems))


def child_path(path: str, key: str, index: int | None = None) -> str:
    step = key if index is None else f"{key}[{index}]"
    return step if path == "$" else f"{path}.{step}"


# ------------------------------------------------------------------------------ node kinds

NODE_KEYS: dict[str, frozenset[str]] = {
    "and": frozenset({"and"}),
    "or": frozenset({"or"}),
    "not": frozenset({"not"}),
    "field": frozenset({"field", "op", "value"}),
    "attribute": frozenset({"attribute", "op", "value"}),
    "event": frozenset({"event", "where", "min_count", "within_days"}),
    "audience": frozenset({"audience", "op"}),
    "consent": frozenset({"consent"}),
}
PROPERTY_KEYS = frozenset({"property", "op", "value", "type"})


def node_kind(node: Any) -> str | None:
    """Which kind of node this is (the first key of NODE_KEYS it has), or None."""
    if not isinstance(node, dict):
        return None
    for kind in NODE_KEYS:
        if kind in node:
            return kind
    return None


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


KIND_OF_PROPERTY_TYPE = {"string": "text", "number": "numeric", "bool": "bool",
                         "date": "date", "any": "any"}


class _Validator:
    def __init__(self, schema: RuleSchema, now: datetime | None) -> None:
        self.schema = schema
        self.now = now or datetime.now(UTC)
        self.problems: list[RuleProblem] = []
        self.audiences: list[tuple[str, str]] = []  # (slug, path)

    def fail(self, path: str, code: str, message: str) -> None:
        self.problems.append(RuleProblem(path, code, message))

    def node(self, node: Any, path: str, depth: int) -> None:
        if depth > MAX_DEPTH:
            self.fail(path, "too_deep", f"rules nest at most {MAX_DEPTH} levels")
            return
        kind = node_kind(node)
        if kind is None:
            self.fail(path, "unknown_node",
                      "expected an object with one of: " + ", ".join(NODE_KEYS))
            return
        extra = set(node) - NODE_KEYS[kind]
        if extra:
            self.fail(path, "unknown_key", f"unexpected key(s) {sorted(extra)} in a {kind} node")
            return
        _NODE_CHECKS[kind](self, node, path, depth)

    def group(self, node: dict[str, Any], path: str, depth: int) -> None:
        key = "and" if "and" in node else "or"
        children = node[key]
        if not isinstance(children, list) or not children:
            self.fail(path, "bad_group", f"{key} takes a non-empty list of rules")
            return
        for i, child in enumerate(children):
            self.node(child, child_path(path, key, i), depth + 1)

    def negation(self, node: dict[str, Any], path: str, depth: int) -> None:
        self.node(node["not"], child_path(path, "not"), depth + 1)

    def field_condition(self, node: dict[str, Any], path: str, depth: int) -> None:
        name = node["field"]
        if not isinstance(name, str) or name not in self.schema.fields:
            self.fail(path, "unknown_field", f"no published field named {name!r}")
            return
        self.condition(node, path, KIND_OF_TYPE[self.schema.fields[name]], name)

    def attribute_condition(self, node: dict[str, Any], path: str, depth: int) -> None:
        name = node["attribute"]
        if not isinstance(name, str) or name not in self.schema.attributes:
            self.fail(path, "unknown_attribute", f"no calculated attribute named {name!r}")
            return
        self.condition(node, path, KIND_OF_TYPE[self.schema.attributes[name]], name)

    def condition(self, node: Mapping[str, Any], path: str, kind: str, name: str) -> None:
        op = OPERATORS.get(node.get("op")) if isinstance(node.get("op"), str) else None
        if op is None:
            self.fail(path, "unknown_operator", f"unknown operator {node.get('op')!r}; use one "
                      "of " + ", ".join(OPERATORS))
            return
        if kind not in op.kinds:
            self.fail(path, "operator_type", f"operator {op.name!r} does not apply to "
                      f"{name!r} ({kind}); it applies to {', '.join(sorted(op.kinds))}")
            return
        message = check_value(op, kind, node.get("value"), self.now, "value" in node)
        if message:
            self.fail(path, "value_type", f"{name!r} {op.name}: {message}")

    def event(self, node: dict[str, Any], path: str, depth: int) -> None:
        if not isinstance(node["event"], str) or not node["event"]:
            self.fail(path, "bad_event", "event takes an event name")
        for key, low in (("min_count", 1), ("within_days", 1)):
            value = node.get(key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                      or not low <= value <= 100_000):
                self.fail(path, "bad_event", f"{key} takes a whole number from {low}")
        where = node.get("where", [])
        if not isinstance(where, list):
            self.fail(path, "bad_event", "where takes a list of property conditions")
            return
        for i, cond in enumerate(where):
            sub = child_path(path, "where", i)
            if not isinstance(cond, dict) or not isinstance(cond.get("property"), str) \
                    or not cond["property"] or set(cond) - PROPERTY_KEYS:
                self.fail(sub, "bad_property", "expected {property, op, value[, type]}")
                continue
            ptype = property_type(cond)
            if ptype not in KIND_OF_PROPERTY_TYPE:
                self.fail(sub, "bad_property", f"type is one of {', '.join(PROPERTY_TYPES)}")
                continue
            self.condition(cond, sub, KIND_OF_PROPERTY_TYPE[ptype], cond["property"])

    def audience(self, node: dict[str, Any], path: str, depth: int) -> None:
        if not isinstance(node["audience"], str) or not node["audience"]:
            self.fail(path, "bad_audience", "audience takes an audience slug")
        elif node.get("op") not in ("include", "exclude"):
            self.fail(path, "bad_audience", "audience op is include or exclude")
        else:
            self.audiences.append((node["audience"], path))

    def consent(self, node: dict[str, Any], path: str, depth: int) -> None:
        if not isinstance(node["consent"], str) or not node["consent"]:
            self.fail(path, "bad_consent", "consent takes a purpose name")


_NODE_CHECKS: dict[str, Callable[[_Validator, dict[str, Any], str, int], None]] = {
    "and": _Validator.group, "or": _Validator.group, "not": _Validator.negation,
    "field": _Validator.field_condition, "attribute": _Validator.attribute_condition,
    "event": _Validator.event, "audience": _Validator.audience, "consent": _Validator.consent,
}


def _scalar_problem(kind: str, value: Any, now: datetime) -> str | None:
    if kind == "text" or kind in ("set", "map"):
        return None if isinstance(value, str) else "expected text"
    if kind == "numeric":
        if isinstance(value, bool) or not isinstance(value, int | float):
            return "expected a number"
        return None if math.isfinite(value) else "expected a finite number"
    if kind == "bool":
        return None if isinstance(value, bool) else "expected true or false"
    if kind == "date":
        if not isinstance(value, str):
            return "expected a date (ISO 8601 or now-30d)"
        try:
            resolve_date(value, now)
        except (ValueError, OverflowError) as exc:
            return str(exc)
        return None
    return "this type takes no value"


def check_value(op: Operator, kind: str, value: Any, now: datetime, present: bool = True
                ) -> str | None:
    """Why this value does not fit the operator on this kind, or None."""
    if op.shape == "none":
        return "takes no value" if present and value is not None else None
    if op.shape == "one":
        return _scalar_problem(kind, value, now)
    expected = 2 if op.shape == "pair" else None
    if not isinstance(value, list) or not value or len(value) > MAX_LIST \
            or (expected is not None and len(value) != expected):
        return "expected [low, high]" if expected else f"expected a list of 1 to {MAX_LIST}"
    for item in value:
        problem = _scalar_problem("text" if kind == "set" else kind, item, now)
        if problem:
            return problem
    return None


# ------------------------------------------------------------------------------ public API

AudienceResolver = Callable[[str], "dict[str, Any] | None"]


def audience_refs(rule: Any) -> Iterator[tuple[str, str]]:
    """(slug, path) of every audience node of a rule (no validation)."""
    stack: list[tuple[Any, str, int]] = [(rule, "$", 1)]
    while stack:
        node, path, depth = stack.pop()
        kind = node_kind(node)
        if depth > MAX_DEPTH + 1 or kind is None:
            continue
        if kind in ("and", "or") and isinstance(node[kind], list):
            for i, child in enumerate(node[kind]):
                stack.append((child, child_path(path, kind, i), depth + 1))
        elif kind == "not":
            stack.append((node["not"], child_path(path, "not"), depth + 1))
        elif kind == "audience" and isinstance(node["audience"], str):
            yield node["audience"], path


def validate_rule(rule: Any, schema: RuleSchema, *, slug: str | None = None,
                  resolve: AudienceResolver | None = None, now: datetime | None = None) -> None:
    """Raise RuleError listing every problem of the rule (path, code, message).

    With ``resolve`` (slug → that audience's rule, None when there is none), audiences the
    rule includes or excludes must exist, and none may lead back to ``slug``."""
    checker = _Validator(schema, now)
    checker.node(rule, "$", 1)
    if resolve is not None:
        for ref, path in checker.audiences:
            problem = _cycle_problem(ref, slug, resolve)
            if problem:
                checker.fail(path, *problem)
    if checker.problems:
        raise RuleError(checker.problems)


def _cycle_problem(ref: str, slug: str | None, resolve: AudienceResolver
                   ) -> tuple[str, str] | None:
    if slug is not None and ref == slug:
        return "self_reference", f"audience {slug!r} cannot include or exclude itself"
    if resolve(ref) is None:
        return "unknown_audience", f"no audience {ref!r}"
    seen: set[str] = {ref}
    stack: list[tuple[str, list[str]]] = [(ref, [ref])]
    while stack:
        current, trail = stack.pop()
        for nxt, _ in audience_refs(resolve(current) or {}):
            if slug is not None and nxt == slug:
                chain = " → ".join([slug, *trail, slug])
                return "self_reference", f"audience {slug!r} includes itself through {chain}"
            if nxt not in seen:
                seen.add(nxt)
                stack.append((nxt, [*trail, nxt]))
    return None


# ------------------------------------------------------------------------------ what a rule reads


def walk_nodes(rule: Any) -> Iterator[dict[str, Any]]:
    """Every node of a rule (no validation; malformed parts are skipped)."""
    stack: list[tuple[Any, int]] = [(rule, 1)]
    while stack:
        node, depth = stack.pop()
        kind = node_kind(node)
        if kind is None or depth > MAX_DEPTH + 1:
            continue
        yield node
        if kind in ("and", "or") and isinstance(node[kind], list):
            stack.extend((child, depth + 1) for child in reversed(node[kind]))
        elif kind == "not":
            stack.append((node["not"], depth + 1))


_DEPENDENCY_PREFIX = {"field": "field", "attribute": "attribute", "event": "event",
                      "audience": "audience", "consent": "consent"}


def dependencies(rule: Any) -> list[str]:
    """What a rule reads, sorted: ``field:x``, ``attribute:x``, ``event:x``,
    ``audience:slug``, ``consent:p`` (Audience.depends_on)."""
    found: set[str] = set()
    for node in walk_nodes(rule):
        kind = node_kind(node)
        if kind in _DEPENDENCY_PREFIX and isinstance(node[kind], str):
            found.add(f"{_DEPENDENCY_PREFIX[kind]}:{node[kind]}")
    return sorted(found)


def _relative_value(value: Any) -> bool:
    if isinstance(value, list):
        return any(_relative_value(v) for v in value)
    return isinstance(value, str) and bool(_RELATIVE.match(value.strip()))


def is_time_relative(rule: Any) -> bool:
    """Whether the rule's result can change with time alone: an event window, a relative date
    (``now-7d``) on a date field or property, or a calculated attribute (windowed)."""
    for node in walk_nodes(rule):
        kind = node_kind(node)
        if kind == "attribute" or (kind == "event" and node.get("within_days")):
            return True
        if kind == "field" and _relative_value(node.get("value")):
            return True
        if kind == "event" and isinstance(node.get("where"), list) and any(
                isinstance(c, dict) and _relative_value(c.get("value")) for c in node["where"]):
            return True
    return False
