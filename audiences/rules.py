"""Audience rules: the JSON tree and its validation against the live schema.

A rule is plain JSON (docs/audiences.md). It never reaches SQL as it is: ``validate_rule``
checks every node against an allowlist built from the published schema (field names and their
types, calculated attributes) and the operator registry of the rule core
(``profiles.conditions``: operators, value kinds, value checks, dates), and
``audiences.compiler`` turns only validated rules into SQL and Python predicates of its own
making. What is the audiences' own is here: the nodes (groups, fields, attributes, events,
audiences, consent), audience references and their cycles, and what a rule reads.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from profiles.conditions import (
    KIND_OF_PROPERTY_TYPE,
    KIND_OF_TYPE,
    OPERATORS,
    PROPERTY_KEYS,
    PROPERTY_TYPES,
    check_value,
    is_relative_date,
    property_type,
)

MAX_DEPTH = 20

# Operators that tell more of a value than whether it is one given value (a pattern, a part,
# a range): on a PII field, a reader who may only see it masked could spell the value out one
# letter at a time from the sizes such rules select. Equality, ``in`` and ``exists`` stay, as
# in profile search. (#18)
REVEALING_OPERATORS = frozenset({"like", "contains", "not contains", ">", ">=", "<", "<=",
                                 "between"})

Masks = Callable[[str], bool]


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


def node_kind(node: Any) -> str | None:
    """Which kind of node this is (the first key of NODE_KEYS it has), or None."""
    if not isinstance(node, dict):
        return None
    for kind in NODE_KEYS:
        if kind in node:
            return kind
    return None


class _Validator:
    def __init__(self, schema: RuleSchema, now: datetime | None, masks: Masks | None = None,
                 ) -> None:
        self.schema = schema
        self.now = now or datetime.now(UTC)
        self.masks = masks
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
        self.masked(node, path, name)

    def masked(self, node: Mapping[str, Any], path: str, name: str) -> None:
        """Refuse a revealing operator on a field (or event property) the reader sees masked."""
        if self.masks is not None and node.get("op") in REVEALING_OPERATORS and self.masks(name):
            self.fail(path, "pii_operator",
                      f"{name!r} is PII, which your roles see masked (no pii.view): it takes "
                      f"=, !=, in, not in and exists only, not {node['op']!r}")

    def attribute_condition(self, node: dict[str, Any], path: str, depth: int) -> None:
        name = node["attribute"]
        if not isinstance(name, str) or name not in self.schema.attributes:
            self.fail(path, "unknown_attribute", f"no calculated attribute named {name!r}")
            return
        self.condition(node, path, KIND_OF_TYPE[self.schema.attributes[name]], name)

    def condition(self, node: Mapping[str, Any], path: str, kind: str, name: str) -> None:
        op = OPERATORS.get(node["op"]) if isinstance(node.get("op"), str) else None
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
            self.masked(cond, sub, cond["property"])

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
                  resolve: AudienceResolver | None = None, now: datetime | None = None,
                  masks: Masks | None = None) -> None:
    """Raise RuleError listing every problem of the rule (path, code, message).

    With ``resolve`` (slug → that audience's rule, None when there is none), audiences the
    rule includes or excludes must exist, and none may lead back to ``slug``. With ``masks``
    (field name → whether the rule's author sees it masked), such fields take no
    ``REVEALING_OPERATORS``."""
    checker = _Validator(schema, now, masks)
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
    return is_relative_date(value)


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
