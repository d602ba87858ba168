"""The schema: fields, mappings and route rules; the draft, its checks, and published versions.

Edits go to the draft, which is the account's ``Field``, ``Mapping`` and ``RouteRule`` rows.
Each save is checked on its own (an expression that does not compile, a mapping whose result
does not fit its field, a route rule that closes a loop are refused with the reason and, for
expressions, the line and column) and ``validate_draft`` checks the draft as a whole.
``publish`` copies a valid draft into an immutable ``SchemaVersion`` (a JSON snapshot); the
account's live schema is its highest version number, and processing compiles each version once
per process (``compiled_schema``). ``revert`` publishes an earlier version's snapshot as a new
version and makes it the draft again, so history only ever grows.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from cdp_site import audit
from cdp_site.models import AuditEvent
from profiles.models import Field, Mapping, RawEvent, RouteRule, SchemaVersion
from profiles.schema.expressions import Expression, ExpressionSyntaxError, compile_expression
from profiles.schema.key_usage import recompute_key_usage
from profiles.schema.merge import FIELD_TYPES, OPERATORS, MergeOperator, coerce, get_operator

if TYPE_CHECKING:
    from cdp_site.models import Account
    from cdp_site.tenancy import Actor

__all__ = [
    "CompiledSchema",
    "FieldSpec",
    "Problem",
    "SchemaValidationError",
    "compiled_schema",
    "delete_field",
    "delete_mapping",
    "delete_route_rule",
    "diff_schema",
    "diff_snapshots",
    "draft_snapshot",
    "install_lytics_schema",
    "live_schema",
    "live_version",
    "preview_mapping",
    "publish",
    "revert",
    "save_field",
    "save_mapping",
    "save_route_rule",
    "validate_draft",
]

FIELD_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,99}")
STREAM_NAME = re.compile(r"[A-Za-z0-9_-]{1,100}")
IDENTIFIER_TYPES = ("string", "int", "[]string")
MAX_RANK = 100
FIELD_ATTRS = ("name", "description", "type", "merge_operator", "capacity", "keep_days",
               "is_identifier", "identifier_rank", "identifier_capacity", "is_pii")
MAPPING_ATTRS = ("field", "stream", "expression", "guard")
ROUTE_ATTRS = ("name", "input_stream", "expression", "output_stream", "priority", "active")

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


# --------------------------------------------------------------------------- problems


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


# --------------------------------------------------------------------------- checks


def _int_or_none(value: Any) -> int | None:
    return None if value in (None, "") else int(value)


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


# --------------------------------------------------------------------------- snapshots


def field_entry(item: Field) -> dict[str, Any]:
    return {attr: getattr(item, attr) for attr in FIELD_ATTRS}


def draft_snapshot(account: Account, *, with_ids: bool = False) -> dict[str, Any]:
    """The draft as a snapshot (what ``publish`` stores). ``with_ids`` adds the rows' ids to
    mappings and route rules, so problems can point at them."""
    fields = [field_entry(f) for f in Field.objects.for_account(account).order_by("name")]
    mappings = []
    for m in (Mapping.objects.for_account(account).select_related("field")
              .order_by("stream", "field__name", "id")):
        entry = {"field": m.field.name, "stream": m.stream, "expression": m.expression,
                 "guard": m.guard}
        if with_ids:
            entry["id"] = m.pk
        mappings.append(entry)
    rules = []
    for r in RouteRule.objects.for_account(account).order_by("input_stream", "-priority", "id"):
        entry = {attr: getattr(r, attr) for attr in ROUTE_ATTRS}
        if with_ids:
            entry["id"] = r.pk
        rules.append(entry)
    return {"fields": fields, "mappings": mappings, "route_rules": rules}


def _strip_ids(snapshot: dict[str, Any]) -> dict[str, Any]:
    return {kind: [{k: v for k, v in item.items() if k != "id"} for item in items]
            for kind, items in snapshot.items()}


def live_version(account: Account) -> SchemaVersion | None:
    """The version processing uses: the account's highest number (None before any publish)."""
    return SchemaVersion.objects.for_account(account).order_by("-number").first()


def validate_draft(account: Account) -> list[Problem]:
    """Every problem of the draft; empty when it can be published."""
    return check_snapshot(draft_snapshot(account, with_ids=True),
                          max_identifiers=account.max_identifiers_per_profile)


def _describe_mapping(m: dict[str, Any]) -> str:
    guard = f" when {m['guard']}" if m.get("guard") else ""
    return f"{m['field']} ← {m['stream']}: {m['expression']}{guard}"


def _diff_grouped(old: list[dict[str, Any]], new: list[dict[str, Any]],
                  group: tuple[str, ...]) -> dict[str, list[Any]]:
    """Added, removed and changed entries; within a group (same field and stream, say) one old
    and one new entry that differ are a change, else adds and removes."""
    def key(item: dict[str, Any]) -> tuple[Any, ...]:
        return tuple(item.get(g) for g in group)

    def canon(item: dict[str, Any]) -> tuple[Any, ...]:
        return tuple(sorted(item.items()))

    out: dict[str, list[Any]] = {"added": [], "removed": [], "changed": []}
    groups: dict[tuple[Any, ...], tuple[list[Any], list[Any]]] = {}
    for item in old:
        groups.setdefault(key(item), ([], []))[0].append(item)
    for item in new:
        groups.setdefault(key(item), ([], []))[1].append(item)
    for olds, news in groups.values():
        old_set = {canon(i): i for i in olds}
        new_set = {canon(i): i for i in news}
        removed = [i for c, i in old_set.items() if c not in new_set]
        added = [i for c, i in new_set.items() if c not in old_set]
        if len(removed) == 1 and len(added) == 1:
            before, after = removed[0], added[0]
            out["changed"].append({
                "before": before, "after": after,
                "changes": {k: [before.get(k), after.get(k)]
                            for k in sorted(set(before) | set(after))
                            if before.get(k) != after.get(k)},
            })
        else:
            out["removed"] += removed
            out["added"] += added
    return out


def diff_snapshots(old: dict[str, Any] | None, new: dict[str, Any]) -> dict[str, Any]:
    """What publishing ``new`` over ``old`` would change, per kind: added, removed, changed
    (with each changed attribute as ``[before, after]``). ``has_changes`` sums it up."""
    old = _strip_ids(old or {"fields": [], "mappings": [], "route_rules": []})
    new = _strip_ids(new)
    diff = {
        "fields": _diff_grouped(old.get("fields", []), new.get("fields", []), ("name",)),
        "mappings": _diff_grouped(old.get("mappings", []), new.get("mappings", []),
                                  ("field", "stream")),
        "route_rules": _diff_grouped(old.get("route_rules", []), new.get("route_rules", []),
                                     ("input_stream", "output_stream")),
    }
    diff["has_changes"] = any(part[k] for part in diff.values() if isinstance(part, dict)
                              for k in ("added", "removed", "changed"))
    return diff


def diff_schema(account: Account) -> dict[str, Any]:
    """The draft compared with the live version (what publishing would change)."""
    live = live_version(account)
    diff = diff_snapshots(live.snapshot if live else None, draft_snapshot(account))
    diff["live_version"] = live.number if live else None
    return diff


# --------------------------------------------------------------------------- editing the draft


def _changed(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """A draft edit's audit changes: ``{attribute: [old, new]}`` (empty: nothing changed, and a
    save that changed nothing is not an event)."""
    return {k: [before.get(k), after.get(k)] for k in after if before.get(k) != after.get(k)}


def _mapping_entry(item: Mapping) -> dict[str, Any]:
    return {"field": item.field.name, "stream": item.stream, "expression": item.expression,
            "guard": item.guard}


def _route_entry(item: RouteRule) -> dict[str, Any]:
    return {attr: getattr(item, attr) for attr in ROUTE_ATTRS}


@transaction.atomic
def save_field(account: Account, *, instance: Field | None = None, actor: Actor | None = None,
               **attrs: Any) -> Field:
    """Create (``instance`` None) or change a draft field; refused with SchemaValidationError
    when the field, or one of its mappings under a changed type, would be invalid. With an
    ``actor``, ``schema_field.created`` / ``.updated`` goes to the audit log."""
    unknown = set(attrs) - set(FIELD_ATTRS)
    if unknown:
        raise TypeError(f"unknown field attributes: {', '.join(sorted(unknown))}")
    item = instance or Field(account=account)
    if item.pk and item.account_id != account.pk:
        raise ValueError("the field belongs to another account")
    # What is stored, not what a caller may already have set on the instance.
    stored = Field.objects.filter(pk=item.pk).first() if actor and item.pk else None
    before = field_entry(stored) if stored else None
    for attr, value in attrs.items():
        if attr in ("capacity", "keep_days", "identifier_rank", "identifier_capacity"):
            value = _int_or_none(value)
        setattr(item, attr, value)
    if not item.is_identifier:
        item.identifier_rank = None
        item.identifier_capacity = None
    elif item.identifier_capacity is None:
        item.identifier_capacity = 1
    entry = field_entry(item)
    problems = check_field(entry, max_identifiers=account.max_identifiers_per_profile)
    clash = Field.objects.for_account(account).filter(name=item.name).exclude(pk=item.pk)
    if clash.exists():
        problems.append(Problem("duplicate_name", f"There is already a field {item.name!r}.",
                                "field", item.name, "name"))
    if item.pk:
        for m in Mapping.objects.for_account(account).filter(field=item):
            problems += check_mapping({"field": item.name, "stream": m.stream,
                                       "expression": m.expression, "guard": m.guard},
                                      entry, ref=str(m.pk))
    if problems:
        raise SchemaValidationError(problems)
    item.updated_at = timezone.now()
    item.save()
    if before is None:
        audit.record_change(actor, AuditEvent.Action.SCHEMA_FIELD_CREATED, item, entry)
    elif changes := _changed(before, entry):
        audit.record_change(actor, AuditEvent.Action.SCHEMA_FIELD_UPDATED, item, changes)
    return item


@transaction.atomic
def save_mapping(account: Account, *, field: Field | str, stream: str, expression: str,
                 guard: str = "", instance: Mapping | None = None,
                 actor: Actor | None = None) -> Mapping:
    """Create or change a draft mapping; refused when an expression does not compile (with its
    position) or its result does not fit the field's type. With an ``actor``,
    ``mapping.created`` / ``.updated`` goes to the audit log (the field by name)."""
    if isinstance(field, str):
        found = Field.objects.for_account(account).filter(name=field).first()
        if found is None:
            raise SchemaValidationError([Problem("unknown_field", f"No field {field!r}.",
                                                 "mapping", "", "field")])
        field = found
    if field.account_id != account.pk:
        raise ValueError("the field belongs to another account")
    item = instance or Mapping(account=account)
    if item.pk and item.account_id != account.pk:
        raise ValueError("the mapping belongs to another account")
    stored = (Mapping.objects.select_related("field").filter(pk=item.pk).first()
              if actor and item.pk else None)
    before = _mapping_entry(stored) if stored else None
    item.field, item.stream, item.expression, item.guard = field, stream, expression, guard or ""
    problems = check_mapping({"field": field.name, "stream": stream, "expression": expression,
                              "guard": item.guard}, field_entry(field),
                             ref=str(item.pk or ""))
    if problems:
        raise SchemaValidationError(problems)
    item.updated_at = timezone.now()
    item.save()
    if before is None:
        audit.record_change(actor, AuditEvent.Action.MAPPING_CREATED, item, _mapping_entry(item))
    elif changes := _changed(before, _mapping_entry(item)):
        audit.record_change(actor, AuditEvent.Action.MAPPING_UPDATED, item, changes)
    return item


@transaction.atomic
def save_route_rule(account: Account, *, input_stream: str, expression: str,
                    output_stream: str, priority: int = 0, active: bool = True, name: str = "",
                    instance: RouteRule | None = None, actor: Actor | None = None
                    ) -> RouteRule:
    """Create or change a draft route rule; refused when its expression does not compile or
    the active rules would form a loop. With an ``actor``, ``route_rule.created`` /
    ``.updated`` goes to the audit log."""
    item = instance or RouteRule(account=account)
    if item.pk and item.account_id != account.pk:
        raise ValueError("the route rule belongs to another account")
    stored = RouteRule.objects.filter(pk=item.pk).first() if actor and item.pk else None
    before = _route_entry(stored) if stored else None
    item.input_stream, item.expression, item.output_stream = input_stream, expression, \
        output_stream
    item.priority, item.active, item.name = int(priority), bool(active), name
    entry = {attr: getattr(item, attr) for attr in ROUTE_ATTRS}
    problems = check_route_rule(entry, ref=str(item.pk or ""))
    others = [{attr: getattr(r, attr) for attr in ROUTE_ATTRS}
              for r in RouteRule.objects.for_account(account).exclude(pk=item.pk)]
    loop = route_loop([*others, entry])
    if loop and not any(p.code == "route_loop" for p in problems):
        problems.append(Problem("route_loop", "This rule would make route rules loop: "
                                + " → ".join(loop) + ".", "route_rule", str(item.pk or ""),
                                "output_stream"))
    if problems:
        raise SchemaValidationError(problems)
    item.updated_at = timezone.now()
    item.save()
    if before is None:
        audit.record_change(actor, AuditEvent.Action.ROUTE_RULE_CREATED, item, entry)
    elif changes := _changed(before, entry):
        audit.record_change(actor, AuditEvent.Action.ROUTE_RULE_UPDATED, item, changes)
    return item


@transaction.atomic
def delete_field(account: Account, item: Field, actor: Actor | None = None) -> None:
    """Remove a draft field and its mappings (published versions keep them). With an
    ``actor``, one ``schema_field.deleted`` entry names the mappings that went with it."""
    if actor is not None and Field.objects.for_account(account).filter(pk=item.pk).exists():
        mappings = [_describe_mapping(_mapping_entry(m)) for m in
                    Mapping.objects.for_account(account).filter(field_id=item.pk)
                    .select_related("field").order_by("stream", "id")]
        audit.record_change(actor, AuditEvent.Action.SCHEMA_FIELD_DELETED, item,
                            {**field_entry(item), **({"mappings": mappings} if mappings else {})})
    Field.objects.for_account(account).filter(pk=item.pk).delete()


@transaction.atomic
def delete_mapping(account: Account, item: Mapping, actor: Actor | None = None) -> None:
    if Mapping.objects.for_account(account).filter(pk=item.pk).delete()[0]:
        audit.record_change(actor, AuditEvent.Action.MAPPING_DELETED, item, _mapping_entry(item))


@transaction.atomic
def delete_route_rule(account: Account, item: RouteRule, actor: Actor | None = None) -> None:
    if RouteRule.objects.for_account(account).filter(pk=item.pk).delete()[0]:
        audit.record_change(actor, AuditEvent.Action.ROUTE_RULE_DELETED, item, _route_entry(item))


# --------------------------------------------------------------------------- versions


def _route_label(r: dict[str, Any]) -> str:
    name = f"{r['name']}: " if r.get("name") else ""
    return f"{name}{r['input_stream']} → {r['output_stream']} if {r['expression']}"


LABELS = {"fields": lambda f: f["name"], "mappings": _describe_mapping,
          "route_rules": _route_label}


def audit_diff(diff: dict[str, Any]) -> dict[str, Any]:
    """A published diff in the audit log's words: per kind, what was added and removed (by
    name or description) and each changed entry's ``{attribute: [old, new]}``. Schema
    definitions only, never profile data."""
    found: dict[str, Any] = {}
    for kind, label in LABELS.items():
        part = diff[kind]
        summary = {
            "added": [label(i) for i in part["added"]],
            "removed": [label(i) for i in part["removed"]],
            "changed": {label(c["before"]): c["changes"] for c in part["changed"]},
        }
        summary = {k: v for k, v in summary.items() if v}
        if summary:
            found[kind] = summary
    return found


@transaction.atomic
def publish(account: Account, *, user: Any = None, note: str = "",
            reverted_from: int | None = None, actor: Actor | None = None) -> SchemaVersion:
    """The valid draft as the next immutable version, which processing uses from then on.
    Refused (SchemaValidationError, nothing changes) when the draft has problems or does not
    differ from the live version. With an ``actor`` (its user is the publisher) the audit
    log gets ``schema.published`` (``schema.reverted`` with ``reverted_from``) and the diff."""
    if user is None and actor is not None:
        user = actor.user
    # One publisher at a time per account: the version numbers stay gapless.
    from cdp_site.models import Account as AccountModel

    AccountModel.objects.select_for_update().filter(pk=account.pk).first()
    problems = validate_draft(account)
    if problems:
        raise SchemaValidationError(problems)
    snapshot = draft_snapshot(account)
    live = live_version(account)
    diff = diff_snapshots(live.snapshot if live is not None else None, snapshot)
    if live is not None and not diff["has_changes"]:
        raise SchemaValidationError([Problem(
            "no_changes", f"The draft is the same as the live version {live.number}.")])
    number = (SchemaVersion.objects.for_account(account).aggregate(n=Max("number"))["n"]
              or 0) + 1
    version = SchemaVersion.objects.create(
        account=account, number=number, snapshot=snapshot, note=note[:500],
        reverted_from=reverted_from, published_by=user if getattr(user, "pk", None) else None,
    )
    recompute_key_usage(account, snapshot)  # the explorer's "used by mappings" (revert too)
    changes: dict[str, Any] = {"version": [live.number if live else None, number],
                               **audit_diff(diff)}
    if note:
        changes["note"] = note[:500]
    if reverted_from is None:
        audit.record_change(actor, AuditEvent.Action.SCHEMA_PUBLISHED, version, changes)
    else:
        changes["reverted_to"] = reverted_from
        audit.record_change(actor, AuditEvent.Action.SCHEMA_REVERTED, version, changes)
    return version


@transaction.atomic
def load_draft(account: Account, snapshot: dict[str, Any]) -> None:
    """Make the draft equal to a snapshot. Fields keep their rows (and ids) by name; mappings
    and route rules are replaced."""
    now = timezone.now()
    wanted = {f["name"]: f for f in snapshot.get("fields", [])}
    existing = {f.name: f for f in Field.objects.for_account(account)}
    Mapping.objects.for_account(account).delete()
    RouteRule.objects.for_account(account).delete()
    Field.objects.for_account(account).exclude(name__in=list(wanted)).delete()
    for name, entry in wanted.items():
        item = existing.get(name) or Field(account=account, created_at=now)
        for attr in FIELD_ATTRS:
            setattr(item, attr, entry.get(attr, getattr(item, attr)))
        item.updated_at = now
        item.save()
        existing[name] = item
    Mapping.objects.bulk_create([
        Mapping(account=account, field=existing[m["field"]], stream=m["stream"],
                expression=m["expression"], guard=m.get("guard") or "", created_at=now,
                updated_at=now)
        for m in snapshot.get("mappings", []) if m["field"] in existing
    ])
    RouteRule.objects.bulk_create([
        RouteRule(account=account, created_at=now, updated_at=now,
                  **{attr: r[attr] for attr in ROUTE_ATTRS if attr in r})
        for r in snapshot.get("route_rules", [])
    ])


@transaction.atomic
def revert(account: Account, number: int, *, user: Any = None, publish_now: bool = True,
           actor: Actor | None = None) -> SchemaVersion | None:
    """Go back to version ``number``: the draft becomes that version's schema and, with
    ``publish_now`` (the default), it is published as a new version (``reverted_from`` set),
    so processing uses it from then on. Versions are never rewritten. Returns the new version
    (None when only the draft was restored). With an ``actor``, one ``schema.reverted``
    audit entry: on the new version, or on version ``number`` when only the draft was
    restored."""
    target = SchemaVersion.objects.for_account(account).get(number=number)
    load_draft(account, target.snapshot)
    if not publish_now:
        audit.record_change(actor, AuditEvent.Action.SCHEMA_REVERTED, target,
                            {"draft": [None, f"v{number}"], "published": False})
        return None
    return publish(account, user=user, note=f"Revert to version {number}",
                   reverted_from=number, actor=actor)


# --------------------------------------------------------------------------- compiled schema


@dataclass(frozen=True)
class FieldSpec:
    """A field as processing sees it."""

    name: str
    type: str
    operator: MergeOperator
    capacity: int | None
    keep_days: int | None
    identifier_rank: int | None  # None: not an identifier
    identifier_capacity: int
    is_pii: bool


@dataclass(frozen=True)
class CompiledMapping:
    field: FieldSpec
    expression: Expression
    guard: Expression | None


@dataclass(frozen=True)
class CompiledRoute:
    input_stream: str
    output_stream: str
    expression: Expression


@dataclass
class CompiledSchema:
    """A published version, compiled: what the pipeline runs."""

    version_id: int
    number: int
    fields: dict[str, FieldSpec]
    mappings: dict[str, list[CompiledMapping]] = field(default_factory=dict)
    routes: dict[str, list[CompiledRoute]] = field(default_factory=dict)

    @property
    def identifiers(self) -> dict[str, FieldSpec]:
        return {n: f for n, f in self.fields.items() if f.identifier_rank is not None}


def compile_snapshot(snapshot: dict[str, Any], version_id: int = 0, number: int = 0
                     ) -> CompiledSchema:
    fields = {}
    for f in snapshot.get("fields", []):
        identifier = bool(f.get("is_identifier"))
        fields[f["name"]] = FieldSpec(
            name=f["name"], type=f["type"], operator=get_operator(f["merge_operator"]),
            capacity=f.get("capacity"), keep_days=f.get("keep_days"),
            identifier_rank=f.get("identifier_rank") if identifier else None,
            identifier_capacity=(f.get("identifier_capacity") or 1) if identifier else 0,
            is_pii=bool(f.get("is_pii")),
        )
    schema = CompiledSchema(version_id, number, fields)
    for m in snapshot.get("mappings", []):
        spec = fields.get(m["field"])
        if spec is None:
            continue
        guard = compile_expression(m["guard"]) if m.get("guard") else None
        schema.mappings.setdefault(m["stream"], []).append(
            CompiledMapping(spec, compile_expression(m["expression"]), guard))
    for r in snapshot.get("route_rules", []):  # already in priority order
        if r.get("active", True):
            schema.routes.setdefault(r["input_stream"], []).append(
                CompiledRoute(r["input_stream"], r["output_stream"],
                              compile_expression(r["expression"])))
    return schema


_CACHE: OrderedDict[int, CompiledSchema] = OrderedDict()
_CACHE_LOCK = threading.Lock()
_CACHE_SIZE = 64


def compiled_schema(version: SchemaVersion) -> CompiledSchema:
    """A version compiled once per process (versions never change, so the id is the key)."""
    with _CACHE_LOCK:
        found = _CACHE.get(version.pk)
        if found is not None:
            _CACHE.move_to_end(version.pk)
            return found
    compiled = compile_snapshot(version.snapshot, version.pk, version.number)
    with _CACHE_LOCK:
        _CACHE[version.pk] = compiled
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return compiled


def live_schema(account: Account | int) -> CompiledSchema | None:
    """The live version compiled (one small query when it is cached)."""
    account_id = account if isinstance(account, int) else account.pk
    head = (SchemaVersion.objects.filter(account_id=account_id).order_by("-number")
            .values_list("pk", "number").first())
    if head is None:
        return None
    with _CACHE_LOCK:
        found = _CACHE.get(head[0])
    if found is not None:
        return found
    return compiled_schema(SchemaVersion.objects.get(pk=head[0]))


# --------------------------------------------------------------------------- dry run


def preview_mapping(account: Account, *, stream: str, expression: str, guard: str = "",
                    field: Field | None = None, limit: int = 20) -> list[dict[str, Any]]:
    """Run an expression (and guard) over the latest ``limit`` raw events of a stream without
    storing anything: per event, the value it would produce, or why it produces none. Raises
    SchemaValidationError for an expression that does not compile."""
    problems = [p for p in (
        expression_problem(expression, kind="mapping", ref="", attr="expression"),
        expression_problem(guard, kind="mapping", ref="", attr="guard") if guard else None,
    ) if p]
    if problems:
        raise SchemaValidationError(problems)
    compiled = compile_expression(expression)
    compiled_guard = compile_expression(guard) if guard else None
    from profiles.processing.pipeline import event_view

    rows = (RawEvent.objects.for_account(account).filter(stream=stream)
            .order_by("-id")[: max(1, min(limit, 200))])
    out = []
    for raw in rows:
        view = event_view(raw.message, raw.anonymous_id, raw.user_id)
        result: dict[str, Any] = {"raw_event_id": raw.pk, "event_at": raw.event_at,
                                  "value": None, "applies": True, "error": None}
        try:
            if compiled_guard is not None and not compiled_guard.matches(view, raw.event_at):
                result["applies"] = False
            else:
                value = compiled.evaluate(view, raw.event_at)
                if field is not None:
                    value = coerce(field.type, value)
                result["value"] = _jsonable(value)
        except ValueError as exc:  # ExpressionError, FieldTypeError
            result["error"] = str(exc)
        out.append(result)
    return out


def _jsonable(value: Any) -> Any:
    from profiles.schema.merge import to_json

    return to_json(value)


# --------------------------------------------------------------------------- Lytics use cases

LYTICS_FIELDS: list[dict[str, Any]] = [
    {"name": "email", "description": "Email address (the strongest identifier).",
     "type": "string", "merge_operator": "latest", "is_identifier": True,
     "identifier_rank": 1, "identifier_capacity": 1, "is_pii": True},
    {"name": "_uid", "description": "Browser cookie ids (the tag's seerid / anonymousId).",
     "type": "[]string", "merge_operator": "capped", "capacity": 50, "is_identifier": True,
     "identifier_rank": 2, "identifier_capacity": 50},
    {"name": "taxonomy", "description": "Content category of the latest page viewed.",
     "type": "string", "merge_operator": "latest"},
    {"name": "loyalty_tier", "description": "Loyalty tier from the CRM.",
     "type": "string", "merge_operator": "latest"},
    {"name": "preferred_activities", "description": "Activities the CRM says they prefer.",
     "type": "[]string", "merge_operator": "merge"},
]
LYTICS_MAPPINGS: list[tuple[str, str, str]] = [
    # field, stream, expression
    *[(f, s, e) for s in ("default", "web") for f, e in (
        ("email", "email(oneof(email, traits.email, context.traits.email))"),
        ("_uid", "oneof(`_uid`, anonymousId)"),
        ("taxonomy", "oneof(taxonomy, properties.taxonomy)"),
    )],
    ("email", "crm_users", "email(origin.email)"),
    ("loyalty_tier", "crm_users", "response.loyalty_tier"),
    ("preferred_activities", "crm_users", "response.preferred_activities"),
]


@transaction.atomic
def install_lytics_schema(account: Account, *, user: Any = None, publish_now: bool = True
                          ) -> SchemaVersion | None:
    """The schema of the Lytics use-case guides: email (rank 1, capacity 1) and the `_uid`
    cookie (rank 2, capacity 50) as identifiers, `taxonomy` from page views, `loyalty_tier` and
    `preferred_activities` from CRM records (stream ``crm_users``). Fields already present are
    updated; mappings are added once. Published unless ``publish_now`` is false (then the
    live version, if any, is returned unchanged... or None)."""
    fields = {f.name: f for f in Field.objects.for_account(account)}
    for entry in LYTICS_FIELDS:
        attrs = {k: v for k, v in entry.items() if k != "name"}
        fields[entry["name"]] = save_field(account, instance=fields.get(entry["name"]),
                                           name=entry["name"], **attrs)
    have = set(Mapping.objects.for_account(account)
               .values_list("field__name", "stream", "expression"))
    for name, stream, expression in LYTICS_MAPPINGS:
        if (name, stream, expression) not in have:
            save_mapping(account, field=fields[name], stream=stream, expression=expression)
    if not publish_now:
        return live_version(account)
    live = live_version(account)
    if live is not None and not diff_schema(account)["has_changes"]:
        return live
    return publish(account, user=user, note="Lytics use-case schema")
