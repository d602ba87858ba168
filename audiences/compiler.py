"""One rule, two evaluators: SQL over ``profiles_profile p`` for batch membership, and a Python
predicate over one profile in memory for real time. The predicate tests each value with the
rule core's ``value_test`` (profiles.conditions, which calculated attributes run too); the SQL
side is here. They agree exactly (the property test ``tests/audiences/test_compiler_agreement.py``
checks it), on these terms:

- a value is read as its field's kind; a missing value, JSON null, or a value of another JSON
  type (a string in an int field after a schema change) is "no value": every positive
  condition on it is false, and ``!=``, ``not contains``, ``not in``, ``not exists`` are
  exactly NOT their positive operator (so true). Logic is two-valued: no SQL NULL escapes a
  condition (each is wrapped in COALESCE(..., false));
- text compares case-insensitively (both sides lowered with PostgreSQL's per-character
  ``lower``, mirrored by ``profiles.conditions.fold_case``), ordered by code point (COLLATE "C");
- numbers compare as exact decimals (JSON numbers are numeric in jsonb; Python uses Decimal);
- dates are stored as fixed-width UTC stamps (profiles.schema.merge.stamp), so rule dates (resolved
  against ``ctx.now`` once, at compile time) become stamps and compare as text;
- field, attribute and property names, and every value, are bound parameters; table and
  column names come from the CompileContext (our code), checked against an identifier pattern.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from audiences.rules import RuleSchema, node_kind, validate_rule
from profiles.conditions import (
    KIND_OF_PROPERTY_TYPE,
    KIND_OF_TYPE,
    OPERATORS,
    properties_test,
    property_type,
    resolve_date,
    to_decimal,
    value_test,
)
from profiles.schema.merge import stamp

Params = list[Any]
Fragment = tuple[str, Params]

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$")


def _identity(slug: str) -> Any:
    return slug


@dataclass(frozen=True)
class CompileContext:
    """What a rule is compiled against. Membership, consent and calculated attributes live in
    tables other apps own; their names are parameters here:
    ``membership_table`` (profile_id, <membership_column>), ``consent_table``
    (profile_id, purpose: one row per granted purpose), ``attribute_table``
    (profile_id, name, value jsonb)."""

    schema: RuleSchema
    now: datetime
    membership_table: str | None = None
    membership_column: str = "audience_id"
    audience_key: Callable[[str], Any] = _identity  # slug → the membership column's value
    consent_table: str | None = None
    consent_granted_column: str | None = None  # a boolean column the row must have true
    attribute_table: str | None = None
    event_table: str = "profiles_profileevent"
    # The account the profiles belong to, when one: event conditions then name it as a value,
    # so PostgreSQL can read the (account, event, at) index when it hashes an EXISTS
    # (``p.account_id`` there becomes a hash key and the subplan scans every account's events).
    account_id: int | None = None

    def table(self, name: str | None, what: str) -> str:
        if name is None:
            raise ValueError(f"this rule uses {what}, but no {what} table was given")
        if not _IDENTIFIER.match(name):
            raise ValueError(f"{name!r} is not a table or column name")
        return name


@dataclass(frozen=True)
class EventView:
    """One profile event: ``properties`` are its own properties with its mapped values over
    them (a mapped value wins a name both have), as ``EVENT_PROPERTY`` reads them in SQL."""

    event: str
    at: datetime
    properties: Mapping[str, Any] = field(default_factory=dict)


EventCounter = Callable[[str, Callable[[Mapping[str, Any]], bool], "datetime | None", int], int]


@dataclass
class ProfileView:
    """One profile in memory. ``count_events(name, where, since, enough)`` may replace the
    event list (cached counts); it may stop counting at ``enough``."""

    field_values: Mapping[str, Any]
    events: Sequence[EventView] = ()
    memberships: frozenset[str] | set[str] = frozenset()
    consents: frozenset[str] | set[str] = frozenset()
    attributes: Mapping[str, Any] = field(default_factory=dict)
    count_events: EventCounter | None = None

    def event_count(self, name: str, where: Callable[[Mapping[str, Any]], bool],
                    since: datetime | None, enough: int) -> int:
        if self.count_events is not None:
            return self.count_events(name, where, since, enough)
        found = 0
        for e in self.events:
            if e.event == name and (since is None or e.at >= since) and where(e.properties):
                found += 1
                if found >= enough:
                    break
        return found


# ------------------------------------------------------------------------------ kinds in SQL


@dataclass(frozen=True)
class SqlKind:
    """How one kind of value (profiles.conditions.KINDS, its Python side) is read and compared
    in SQL.

    ``sql(j)`` turns a jsonb expression into the comparable SQL scalar (NULL when the value
    is of another type); ``placeholder`` is how a bound rule value is written; ``bind``
    prepares a rule value for it."""

    sql: Callable[[str], str]
    placeholder: str
    bind: Callable[[Any, datetime], Any]
    collate: str = ""


def _typed(json_type: str, cast: str) -> Callable[[str], str]:
    return lambda j: f"(CASE WHEN jsonb_typeof({j}) = '{json_type}' THEN {cast.format(j)} END)"


SQL_KINDS: dict[str, SqlKind] = {
    "text": SqlKind(
        sql=_typed("string", "lower({} #>> '{{}}')"), placeholder="lower(%s)",
        bind=lambda v, now: v, collate=' COLLATE "C"'),
    "numeric": SqlKind(
        sql=_typed("number", "({})::numeric"), placeholder="%s::numeric",
        bind=lambda v, now: str(to_decimal(v))),
    "bool": SqlKind(
        sql=_typed("boolean", "({})::boolean"), placeholder="%s::boolean",
        bind=lambda v, now: v),
    "date": SqlKind(
        sql=_typed("string", "({} #>> '{{}}')"), placeholder="%s",
        bind=lambda v, now: stamp(resolve_date(v, now)), collate=' COLLATE "C"'),
    "set": SqlKind(sql=_typed("array", "{}"), placeholder="lower(%s)", bind=lambda v, now: v),
    "map": SqlKind(sql=_typed("object", "{}"), placeholder="lower(%s)", bind=lambda v, now: v),
    "any": SqlKind(
        sql=lambda j: f"(CASE WHEN jsonb_typeof({j}) <> 'null' THEN {j} END)",
        placeholder="%s", bind=lambda v, now: v),
}

# ------------------------------------------------------------------------------ operators in SQL
#
# One small function per positive operator (and kind, where kinds differ): given the kind,
# the comparable SQL expression, the rule value and now, a fragment. Their Python twins are
# profiles.conditions.TESTS.

SqlOp = Callable[[SqlKind, str, Any, datetime], Fragment]

SQL_OPERATORS: dict[str, dict[str, SqlOp]] = {}  # op → kind ("*" for any) → function


def sql_op(name: str, kinds: str = "*") -> Callable[[SqlOp], SqlOp]:
    def register(fn: SqlOp) -> SqlOp:
        for kind in kinds.split():
            SQL_OPERATORS.setdefault(name, {})[kind] = fn
        return fn
    return register


def _compare_sql(symbol: str) -> SqlOp:
    def compare(kind: SqlKind, x: str, value: Any, now: datetime) -> Fragment:
        return f"{x}{kind.collate} {symbol} {kind.placeholder}", [kind.bind(value, now)]
    return compare


for _symbol in ("=", ">", ">=", "<", "<="):
    sql_op(_symbol, "text numeric bool date")(_compare_sql(_symbol))


@sql_op("between", "text numeric date")
def _between_sql(kind: SqlKind, x: str, value: Any, now: datetime) -> Fragment:
    ph = kind.placeholder
    return (f"{x}{kind.collate} >= {ph} AND {x}{kind.collate} <= {ph}",
            [kind.bind(value[0], now), kind.bind(value[1], now)])


@sql_op("in", "text numeric")
def _in_sql(kind: SqlKind, x: str, value: Any, now: datetime) -> Fragment:
    marks = ", ".join([kind.placeholder] * len(value))
    return f"{x} IN ({marks})", [kind.bind(v, now) for v in value]


def _like_pattern(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.replace("*", "%")


@sql_op("contains", "text")
def _contains_text_sql(kind: SqlKind, x: str, value: Any, now: datetime) -> Fragment:
    return f"strpos({x}, lower(%s)) > 0", [value]


@sql_op("like", "text")
def _like_text_sql(kind: SqlKind, x: str, value: Any, now: datetime) -> Fragment:
    return f"{x} LIKE lower(%s) ESCAPE '\\'", [_like_pattern(value)]


def _elements(x: str, test: str) -> str:
    element = "lower(el.v #>> '{}')"
    return (f"EXISTS (SELECT 1 FROM jsonb_array_elements({x}) AS el(v) "  # noqa: S608
            f"WHERE jsonb_typeof(el.v) = 'string' AND {test.format(element)})")


def _lowered(x: str) -> str:
    """The JSON value with every string (element, key) lowered: its text through PostgreSQL's
    per-character lower() and back (escapes and non-string values keep their meaning). An
    expression, not a subquery: a correlated subquery would rule out a parallel scan."""
    return f"lower(({x})::text)::jsonb"


@sql_op("contains", "set map")
def _contains_set_sql(kind: SqlKind, x: str, value: Any, now: datetime) -> Fragment:
    # jsonb ? text: a string element of the array, or a key of the object
    return f"{_lowered(x)} ? lower(%s)", [value]


@sql_op("like", "set")
def _like_set_sql(kind: SqlKind, x: str, value: Any, now: datetime) -> Fragment:
    return _elements(x, "{} LIKE lower(%s) ESCAPE '\\'"), [_like_pattern(value)]


@sql_op("intersects", "set")
def _intersects_sql(kind: SqlKind, x: str, value: Any, now: datetime) -> Fragment:
    marks = ", ".join(["lower(%s)"] * len(value))
    return f"{_lowered(x)} ?| ARRAY[{marks}]::text[]", list(value)


@sql_op("exists")
def _exists_sql(kind: SqlKind, x: str, value: Any, now: datetime) -> Fragment:
    return f"{x} IS NOT NULL", []


def _sql_operator(op: str, kind: str) -> SqlOp:
    by_kind = SQL_OPERATORS[op]
    return by_kind.get(kind) or by_kind["*"]


# ------------------------------------------------------------------------------ SQL


# Text and dates are JSON strings: read from a container by key, ``container ->> key`` gives
# the text in one lookup where ``CASE WHEN jsonb_typeof(container -> key) = 'string' THEN
# (container -> key) #>> '{}' END`` takes two and a path extraction. ``->>`` also renders a
# number or boolean as text, so the type test follows the comparison, read only for rows the
# comparison kept (few, for a selective rule). 15-30 % of a field audience's scan.
_KEYED_TEXT = {"text": "lower({})", "date": "{}"}


def _two_valued(sql: str, negated: bool, positive: bool) -> str:
    """A condition's SQL as the rule reads it: a negated operator is NOT its positive one with
    NULL as false; a positive one needs COALESCE only where NULL would not count as false."""
    if negated:
        return f"NOT COALESCE(({sql}), false)"
    return f"({sql})" if positive else f"COALESCE(({sql}), false)"


def _keyed_condition_sql(container: str, key: str, kind_name: str, op_name: str, value: Any,
                         now: datetime, positive: bool) -> Fragment:
    """A condition on ``container -> key`` (a jsonb column and a key bound as a parameter)."""
    if kind_name not in _KEYED_TEXT:
        return _condition_sql((f"({container} -> %s)", [key]), kind_name, op_name, value, now,
                              positive)
    op = OPERATORS[op_name]
    kind = SQL_KINDS[kind_name]
    j = f"({container} ->> %s)"
    x = _KEYED_TEXT[kind_name].format(j)
    fn = _sql_operator(op.negates or op.name, kind_name)
    sql, values = fn(kind, x, value, now)
    sql = f"{sql} AND jsonb_typeof({container} -> %s) = 'string'"
    values = [*values, key]
    sql = _two_valued(sql, op.negates is not None, positive)
    return sql, _interleave(sql, j, [key], values)


def _condition_sql(source: Fragment, kind_name: str, op_name: str, value: Any,
                   now: datetime, positive: bool = False) -> Fragment:
    """One condition. ``positive``: it is read only where NULL counts as false (a WHERE or
    FILTER clause, through AND / OR but no NOT), so a positive operator needs no COALESCE;
    leaving it out keeps PostgreSQL's row estimate of the condition (an estimate of one half,
    COALESCE's, rules out a parallel scan of the profiles)."""
    op = OPERATORS[op_name]
    kind = SQL_KINDS[kind_name]
    j, params = source
    x = kind.sql(j)
    fn = _sql_operator(op.negates or op.name, kind_name)
    sql, values = fn(kind, x, value, now)
    sql = _two_valued(sql, op.negates is not None, positive)
    return sql, _interleave(sql, j, params, values)


def _interleave(sql: str, j: str, source_params: Params, values: Params) -> Params:
    """Parameters in the order their placeholders appear: each copy of the source's, and the
    values' in between."""
    out: Params = []
    pos = 0
    value_iter = iter(values)
    while True:
        next_source = sql.find(j, pos)
        next_mark = sql.find("%s", pos)
        if next_source == -1 and next_mark == -1:
            break
        if next_source != -1 and (next_mark == -1 or next_source <= next_mark):
            out.extend(source_params)
            pos = next_source + len(j)
        else:
            out.append(next(value_iter))
            pos = next_mark + 2
    return out


def _group_sql(node: dict[str, Any], ctx: CompileContext, positive: bool) -> Fragment:
    key = "and" if "and" in node else "or"
    parts = [_node_sql(child, ctx, positive) for child in node[key]]
    return ("(" + f" {key.upper()} ".join(s for s, _ in parts) + ")",
            [p for _, ps in parts for p in ps])


def _not_sql(node: dict[str, Any], ctx: CompileContext, positive: bool) -> Fragment:
    sql, params = _node_sql(node["not"], ctx, False)
    return f"(NOT {sql})", params


def _field_sql(node: dict[str, Any], ctx: CompileContext, positive: bool) -> Fragment:
    kind = KIND_OF_TYPE[ctx.schema.fields[node["field"]]]
    return _keyed_condition_sql("p.field_values", node["field"], kind, node["op"],
                                node.get("value"), ctx.now, positive)


def _attribute_sql(node: dict[str, Any], ctx: CompileContext, positive: bool) -> Fragment:
    table = ctx.table(ctx.attribute_table, "calculated attribute")
    kind = KIND_OF_TYPE[ctx.schema.attributes[node["attribute"]]]
    source = (f"(SELECT a.value FROM {table} a WHERE a.profile_id = p.id AND a.name = %s)",  # noqa: S608
              [node["attribute"]])
    return _condition_sql(source, kind, node["op"], node.get("value"), ctx.now, positive)


# A property an event condition tests: the event's mapped value of that name, else its own
# property (profiles.processing.event_properties), as ``EventView.properties`` merges them.
EVENT_PROPERTY = "COALESCE(e.properties -> %s, e.own_properties -> %s)"


def event_since(node: Mapping[str, Any], now: datetime) -> datetime | None:
    """Where an event condition's window starts (None: ever)."""
    return now - timedelta(days=node["within_days"]) if node.get("within_days") else None


def event_filter_sql(node: Mapping[str, Any], ctx: CompileContext) -> Fragment:
    """Which rows of the event table ``e`` an event condition counts (name, window, property
    conditions), whoever's they are: the batch SQL adds the profile, real time groups a
    batch's profiles by it."""
    where = ["e.event = %s"]
    params: Params = [node["event"]]
    since = event_since(node, ctx.now)
    if since is not None:
        where.append("e.at >= %s")
        params.append(since)
    for cond in node.get("where") or []:
        kind = KIND_OF_PROPERTY_TYPE[property_type(cond)]
        key = cond["property"]
        sql, ps = _condition_sql((EVENT_PROPERTY, [key, key]), kind, cond["op"],
                                 cond.get("value"), ctx.now, True)
        where.append(sql)
        params.extend(ps)
    return " AND ".join(where), params


def _event_sql(node: dict[str, Any], ctx: CompileContext, positive: bool) -> Fragment:
    table = ctx.table(ctx.event_table, "event")
    rows, params = event_filter_sql(node, ctx)
    account = "p.account_id" if ctx.account_id is None else "%s"
    if ctx.account_id is not None:
        params = [ctx.account_id, *params]
    inner = (f"SELECT 1 FROM {table} e WHERE e.account_id = {account} "  # noqa: S608
             f"AND e.profile_id = p.id AND {rows}")
    enough = node.get("min_count") or 1
    if enough == 1:
        return f"EXISTS ({inner})", params
    return (f"((SELECT count(*) FROM ({inner} LIMIT %s) AS c) >= %s)",  # noqa: S608
            [*params, enough, enough])


def _audience_sql(node: dict[str, Any], ctx: CompileContext, positive: bool) -> Fragment:
    table = ctx.table(ctx.membership_table, "membership")
    column = ctx.table(ctx.membership_column, "membership column")
    sql = f"EXISTS (SELECT 1 FROM {table} m WHERE m.profile_id = p.id AND m.{column} = %s)"  # noqa: S608
    if node["op"] == "exclude":
        sql = f"(NOT {sql})"
    return sql, [ctx.audience_key(node["audience"])]


def _consent_sql(node: dict[str, Any], ctx: CompileContext, positive: bool) -> Fragment:
    table = ctx.table(ctx.consent_table, "consent")
    granted = ""
    if ctx.consent_granted_column is not None:
        granted = f" AND c.{ctx.table(ctx.consent_granted_column, 'consent column')}"
    return (f"EXISTS (SELECT 1 FROM {table} c WHERE c.profile_id = p.id AND c.purpose = %s"  # noqa: S608
            f"{granted})", [node["consent"]])


_NODE_SQL: dict[str, Callable[[dict[str, Any], CompileContext, bool], Fragment]] = {
    "and": _group_sql, "or": _group_sql, "not": _not_sql, "field": _field_sql,
    "attribute": _attribute_sql, "event": _event_sql, "audience": _audience_sql,
    "consent": _consent_sql,
}


def _node_sql(node: dict[str, Any], ctx: CompileContext, positive: bool) -> Fragment:
    return _NODE_SQL[node_kind(node) or ""](node, ctx, positive)


def compile_sql(rule: dict[str, Any], ctx: CompileContext) -> Fragment:
    """A WHERE fragment over ``profiles_profile p`` and its parameters. The caller scopes it
    (``p.account_id = %s AND p.merged_into_id IS NULL``). It is true or, where the profile
    does not match, false or NULL: use it where NULL counts as false (WHERE, FILTER, CASE
    WHEN), never under NOT. Raises RuleError for a rule that does not validate against
    ``ctx.schema``."""
    validate_rule(rule, ctx.schema, now=ctx.now)
    return _node_sql(rule, ctx, True)


# ------------------------------------------------------------------------------ predicate

Predicate = Callable[[ProfileView], bool]


def _group_py(node: dict[str, Any], ctx: CompileContext) -> Predicate:
    children = [_node_py(child, ctx) for child in node.get("and") or node["or"]]
    if "and" in node:
        return lambda view: all(c(view) for c in children)
    return lambda view: any(c(view) for c in children)


def _not_py(node: dict[str, Any], ctx: CompileContext) -> Predicate:
    inner = _node_py(node["not"], ctx)
    return lambda view: not inner(view)


def _field_py(node: dict[str, Any], ctx: CompileContext) -> Predicate:
    name = node["field"]
    test = value_test(KIND_OF_TYPE[ctx.schema.fields[name]], node["op"], node.get("value"),
                         ctx.now)
    return lambda view: test(view.field_values.get(name))


def _attribute_py(node: dict[str, Any], ctx: CompileContext) -> Predicate:
    name = node["attribute"]
    test = value_test(KIND_OF_TYPE[ctx.schema.attributes[name]], node["op"],
                         node.get("value"), ctx.now)
    return lambda view: test(view.attributes.get(name))


def event_where_key(node: Mapping[str, Any]) -> str:
    """The property conditions of an event node as canonical text: ``count_events`` receives
    ``where`` with this as its ``key``, so cached counts can be looked up per condition."""
    return json.dumps(node.get("where") or [], sort_keys=True, separators=(",", ":"))


def _event_py(node: dict[str, Any], ctx: CompileContext) -> Predicate:
    name = node["event"]
    since = event_since(node, ctx.now)
    enough = node.get("min_count") or 1
    where = properties_test(node.get("where") or [], ctx.now)
    where.key = event_where_key(node)  # type: ignore[attr-defined]  # for cached counts
    return lambda view: view.event_count(name, where, since, enough) >= enough


def _audience_py(node: dict[str, Any], ctx: CompileContext) -> Predicate:
    slug = node["audience"]
    if node["op"] == "exclude":
        return lambda view: slug not in view.memberships
    return lambda view: slug in view.memberships


def _consent_py(node: dict[str, Any], ctx: CompileContext) -> Predicate:
    purpose = node["consent"]
    return lambda view: purpose in view.consents


_NODE_PY: dict[str, Callable[[dict[str, Any], CompileContext], Predicate]] = {
    "and": _group_py, "or": _group_py, "not": _not_py, "field": _field_py,
    "attribute": _attribute_py, "event": _event_py, "audience": _audience_py,
    "consent": _consent_py,
}


def _node_py(node: dict[str, Any], ctx: CompileContext) -> Predicate:
    return _NODE_PY[node_kind(node) or ""](node, ctx)


def compile_predicate(rule: dict[str, Any], ctx: CompileContext) -> Predicate:
    """A test of one profile in memory that agrees with ``compile_sql`` on the same context.
    Raises RuleError for a rule that does not validate against ``ctx.schema``."""
    validate_rule(rule, ctx.schema, now=ctx.now)
    return _node_py(rule, ctx)
