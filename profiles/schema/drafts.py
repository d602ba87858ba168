"""Editing the draft: the account's ``Field``, ``Mapping`` and ``RouteRule`` rows.

Every change goes through these services. Each save is checked on its own
(``profiles.schema.checks``: an expression that does not compile, a mapping whose result does
not fit its field, a route rule that closes a loop are refused with the reason and, for
expressions, the line and column) and nothing changes when it is refused. With an ``actor``
each change goes to the audit log. ``preview_mapping`` is the mapping dry run: an expression
over a stream's latest raw events, storing nothing. Publishing the draft is
``profiles.schema.versions``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.db import transaction
from django.utils import timezone

from cdp_site import audit
from cdp_site.models import AuditEvent
from profiles.models import Field, Mapping, RawEvent, RouteRule
from profiles.schema.checks import (
    Problem,
    SchemaValidationError,
    check_field,
    check_mapping,
    check_route_rule,
    expression_problem,
    route_loop,
)
from profiles.schema.compiled import event_view
from profiles.schema.expressions import compile_expression
from profiles.schema.merge import coerce, to_json
from profiles.schema.versions import FIELD_ATTRS, ROUTE_ATTRS, describe_mapping, field_entry

if TYPE_CHECKING:
    from cdp_site.models import Account
    from cdp_site.tenancy import Actor

__all__ = [
    "delete_field",
    "delete_mapping",
    "delete_route_rule",
    "preview_mapping",
    "save_field",
    "save_mapping",
    "save_route_rule",
]


def _int_or_none(value: Any) -> int | None:
    return None if value in (None, "") else int(value)


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
        mappings = [describe_mapping(_mapping_entry(m)) for m in
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
                result["value"] = to_json(value)
        except ValueError as exc:  # ExpressionError, FieldTypeError
            result["error"] = str(exc)
        out.append(result)
    return out
