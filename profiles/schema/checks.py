"""What makes a schema valid: the checks behind every draft edit and every publish.

A field, mapping or route rule (a snapshot entry, see ``profiles.schema.versions``) is checked
on its own (an expression that does not compile, a mapping whose result does not fit its field,
a route rule that sends a stream to itself) and a whole snapshot together (route rules that
close a loop). Each reason is a ``Problem``, with the line and column for an expression; a
refused edit or publish raises ``SchemaValidationError`` carrying them. Pure functions over
dicts: no database.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any

from profiles.schema.expressions import ExpressionSyntaxError, compile_expression
from profiles.schema.merge import FIELD_TYPES, OPERATORS, get_operator

__all__ = [
    "FIELD_NAME",
    "IDENTIFIER_TYPES",
    "MAX_RANK",
    "STREAM_NAME",
    "Problem",
    "SchemaValidationError",
    "check_field",
    "check_mapping",
    "check_route_rule",
    "check_snapshot",
    "expression_problem",
    "result_fits",
    "route_loop",
]

FIELD_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,99}")
STREAM_NAME = re.compile(r"[A-Za-z0-9_-]{1,100}")
IDENTIFIER_TYPES = ("string", "int", "[]string")
MAX_RANK = 100

# Which expression result types fit which field types (``Expression.result_type``; "any" is a
# path or a function whose result depends on the data, checked per event by ``coerce``).
_FITS: dict[str, frozenset[str]] = {
    "string": frozenset({"any", "string"}),
    "int": frozenset({"any", "int"}),
    "number": frozenset({"any", "int", "number"}),
    "bool": frozenset({"any", "bool"}),
    "date": frozenset({"any", "date"}),
    "[]string": frozenset({"any", "string", "[]string", "list"}),
}
_CONVERTERS = {"string": "tostring()", "int": "toint()", "number": "tonumber()",
               "bool": "tobool()", "date": "todate()", "[]string": "set() or split()"}


def result_fits(result_type: str, field_type: str) -> bool:
    """Whether a mapping producing ``result_type`` may feed a field of ``field_type``."""
    if field_type.startswith("map["):
        return result_type in ("any", "map")
    return result_type in _FITS.get(field_type, frozenset())


@dataclass(frozen=True)
class Problem:
    """One reason a schema edit or draft is refused. ``kind`` and ``ref`` say what (a field
    name, or a mapping's / route rule's id); ``attr`` which attribute; for an expression,
    ``line`` and ``column`` where."""

    code: str
    message: str
    kind: str = ""
    ref: str = ""
    attr: str = ""
    line: int | None = None
    column: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v not in (None, "")}


class SchemaValidationError(ValueError):
    """A schema edit or publish refused; nothing was changed."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("; ".join(p.message for p in problems))


def expression_problem(text: str, *, kind: str, ref: str, attr: str) -> Problem | None:
    """None when ``text`` compiles, else the reason with its position."""
    if not text or not text.strip():
        return Problem("empty_expression", f"The {attr} is empty.", kind, ref, attr)
    try:
        compile_expression(text)
    except ExpressionSyntaxError as exc:
        return Problem("invalid_expression", f"{attr}: {exc}", kind, ref, attr,
                       exc.line, exc.column)
    return None


def check_field(data: dict[str, Any], *, max_identifiers: int = 50) -> list[Problem]:
    """Problems of one field definition (a snapshot entry)."""
    name = str(data.get("name") or "")
    problems: list[Problem] = []

    def add(code: str, message: str, attr: str) -> None:
        problems.append(Problem(code, message, "field", name, attr))

    if not FIELD_NAME.fullmatch(name):
        add("invalid_name", f"{name!r} is not a field name: letters, digits and _ (not first "
            "a digit), at most 100.", "name")
    ftype = data.get("type")
    if ftype not in FIELD_TYPES:
        add("invalid_type", f"{ftype!r} is not a field type; use one of "
            f"{', '.join(FIELD_TYPES)}.", "type")
        return problems
    operator = data.get("merge_operator")
    if operator not in OPERATORS:
        add("invalid_merge_operator", f"{operator!r} is not a merge operator; use one of "
            f"{', '.join(sorted(OPERATORS))}.", "merge_operator")
    elif ftype not in get_operator(operator).fits:
        fitting = sorted(n for n, op in OPERATORS.items() if ftype in op.fits)
        add("merge_operator_does_not_fit", f"The {operator} operator does not work on {ftype} "
            f"fields; use one of {', '.join(fitting)}.", "merge_operator")
    for attr in ("capacity", "keep_days"):
        value = data.get(attr)
        if value is not None and (not isinstance(value, int) or value < 1):
            add("invalid_number", f"{attr} must be a whole number of at least 1, or empty.",
                attr)
    if data.get("is_identifier"):
        rank = data.get("identifier_rank")
        capacity = data.get("identifier_capacity")
        if ftype not in IDENTIFIER_TYPES:
            add("identifier_type", f"An identifier must be one of {', '.join(IDENTIFIER_TYPES)}"
                f", not {ftype}.", "type")
        if not isinstance(rank, int) or not 1 <= rank <= MAX_RANK:
            add("identifier_rank", f"An identifier needs a rank from 1 (strongest) to "
                f"{MAX_RANK}.", "identifier_rank")
        if not isinstance(capacity, int) or capacity < 1:
            add("identifier_capacity", "An identifier needs a capacity of at least 1 (how many "
                "values one profile may hold).", "identifier_capacity")
        elif capacity > max_identifiers:
            add("identifier_capacity", f"An identifier's capacity cannot exceed the account's "
                f"{max_identifiers} identifiers per profile.", "identifier_capacity")
    return problems


def check_mapping(data: dict[str, Any], field_def: dict[str, Any] | None, *,
                  ref: str = "") -> list[Problem]:
    """Problems of one mapping (a snapshot entry) given its field's definition."""
    problems: list[Problem] = []
    if field_def is None:
        return [Problem("unknown_field", f"No field {data.get('field')!r}.", "mapping", ref,
                        "field")]
    stream = str(data.get("stream") or "")
    if not STREAM_NAME.fullmatch(stream):
        problems.append(Problem("invalid_stream", f"{stream!r} is not a stream name.",
                                "mapping", ref, "stream"))
    problem = expression_problem(data.get("expression") or "", kind="mapping", ref=ref,
                                 attr="expression")
    if problem:
        problems.append(problem)
    else:
        result = compile_expression(data["expression"]).result_type
        ftype = field_def.get("type", "")
        if ftype in FIELD_TYPES and not result_fits(result, ftype):
            problems.append(Problem(
                "type_mismatch", f"The expression gives {result}, which does not fit "
                f"{field_def['name']} ({ftype}); convert it with {_CONVERTERS.get(ftype, 'map()')}"
                ".", "mapping", ref, "expression"))
    if data.get("guard"):
        problem = expression_problem(data["guard"], kind="mapping", ref=ref, attr="guard")
        if problem:
            problems.append(problem)
        elif compile_expression(data["guard"]).result_type not in ("bool", "any"):
            problems.append(Problem("guard_not_a_condition", "A guard must be true or false.",
                                    "mapping", ref, "guard"))
    return problems


def check_route_rule(data: dict[str, Any], *, ref: str = "") -> list[Problem]:
    problems: list[Problem] = []
    for attr in ("input_stream", "output_stream"):
        stream = str(data.get(attr) or "")
        if not STREAM_NAME.fullmatch(stream):
            problems.append(Problem("invalid_stream", f"{stream!r} is not a stream name.",
                                    "route_rule", ref, attr))
    if data.get("input_stream") and data.get("input_stream") == data.get("output_stream"):
        problems.append(Problem("route_loop", "A route rule cannot send a stream to itself.",
                                "route_rule", ref, "output_stream"))
    problem = expression_problem(data.get("expression") or "", kind="route_rule", ref=ref,
                                 attr="expression")
    if problem:
        problems.append(problem)
    elif compile_expression(data["expression"]).result_type not in ("bool", "any"):
        problems.append(Problem("rule_not_a_condition", "A route rule's expression must be "
                                "true or false.", "route_rule", ref, "expression"))
    return problems


def route_loop(rules: list[dict[str, Any]]) -> list[str] | None:
    """A cycle of streams among active rules (``["a", "b", "a"]``), or None."""
    edges: dict[str, set[str]] = {}
    for rule in rules:
        if rule.get("active", True):
            edges.setdefault(rule["input_stream"], set()).add(rule["output_stream"])
    state: dict[str, int] = {}  # 1 visiting, 2 done

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = 1
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt):], nxt] if nxt in path else [node, nxt]
            if nxt not in state:
                found = visit(nxt, [*path, nxt])
                if found:
                    return found
        state[node] = 2
        return None

    for start in sorted(edges):
        if start not in state:
            found = visit(start, [start])
            if found:
                return found
    return None


def check_snapshot(snapshot: dict[str, Any], *, max_identifiers: int = 50) -> list[Problem]:
    """Every problem of a whole schema (draft or version)."""
    problems: list[Problem] = []
    fields = {f["name"]: f for f in snapshot.get("fields", [])}
    for item in snapshot.get("fields", []):
        problems += check_field(item, max_identifiers=max_identifiers)
    for item in snapshot.get("mappings", []):
        problems += check_mapping(item, fields.get(item["field"]), ref=str(item.get("id", "")))
    for item in snapshot.get("route_rules", []):
        problems += check_route_rule(item, ref=str(item.get("id", "")))
    loop = route_loop(snapshot.get("route_rules", []))
    if loop:
        problems.append(Problem("route_loop", "Route rules form a loop: " + " → ".join(loop)
                                + ".", "route_rule", "", "output_stream"))
    return problems
