"""Snapshots and published versions: what the draft is as data, what changed, and history.

A snapshot is the draft as JSON (``draft_snapshot``: fields, mappings and route rules as plain
entries of ``FIELD_ATTRS``, ``MAPPING_ATTRS`` and ``ROUTE_ATTRS``). ``publish`` copies a valid
draft into an immutable ``SchemaVersion``; the account's live schema is its highest version
number (``live_version``). ``revert`` publishes an earlier version's snapshot as a new version
and makes it the draft again (``load_draft``), so history only ever grows. ``diff_snapshots``
says what publishing would change, and ``audit_diff`` says it in the audit log's words.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from cdp_site import audit
from cdp_site.models import Account, AuditEvent
from profiles.models import Field, Mapping, RouteRule, SchemaVersion
from profiles.schema.checks import Problem, SchemaValidationError, check_snapshot
from profiles.schema.key_usage import recompute_key_usage

if TYPE_CHECKING:
    from cdp_site.tenancy import Actor

__all__ = [
    "FIELD_ATTRS",
    "MAPPING_ATTRS",
    "ROUTE_ATTRS",
    "audit_diff",
    "describe_mapping",
    "diff_schema",
    "diff_snapshots",
    "draft_snapshot",
    "field_entry",
    "live_version",
    "load_draft",
    "publish",
    "revert",
    "validate_draft",
]

FIELD_ATTRS = ("name", "description", "type", "merge_operator", "capacity", "keep_days",
               "is_identifier", "identifier_rank", "identifier_capacity", "is_pii")
MAPPING_ATTRS = ("field", "stream", "expression", "guard")
ROUTE_ATTRS = ("name", "input_stream", "expression", "output_stream", "priority", "active")


def field_entry(item: Field) -> dict[str, Any]:
    return {attr: getattr(item, attr) for attr in FIELD_ATTRS}


def draft_snapshot(account: Account, *, with_ids: bool = False) -> dict[str, Any]:
    """The draft as a snapshot (what ``publish`` stores). ``with_ids`` adds the rows' ids to
    mappings and route rules, so problems can point at them."""
    fields = [field_entry(f) for f in Field.objects.for_account(account).order_by("name")]
    mappings = []
    for m in (Mapping.objects.for_account(account).select_related("field")
              .order_by("stream", "field__name", "id")):
        entry: dict[str, Any] = {"field": m.field.name, "stream": m.stream,
                                 "expression": m.expression, "guard": m.guard}
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


def describe_mapping(m: dict[str, Any]) -> str:
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
    diff: dict[str, Any] = {
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


def _route_label(r: dict[str, Any]) -> str:
    name = f"{r['name']}: " if r.get("name") else ""
    return f"{name}{r['input_stream']} → {r['output_stream']} if {r['expression']}"


LABELS = {"fields": lambda f: f["name"], "mappings": describe_mapping,
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
    Account.objects.select_for_update().filter(pk=account.pk).first()
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
