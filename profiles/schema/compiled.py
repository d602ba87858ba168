"""The schema as processing runs it: a published version compiled, and the events it reads.

``compiled_schema`` compiles a ``SchemaVersion`` snapshot (fields with their merge operators,
mappings and route rules with their expressions) once per process: versions never change, so
the version's id is the cache key. ``live_schema`` is the account's highest version, compiled.
``event_view`` is what every expression sees of an event, in the pipeline and in the mapping
dry run alike.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from profiles.models import SchemaVersion
from profiles.schema.expressions import Expression, compile_expression
from profiles.schema.merge import MergeOperator, get_operator

if TYPE_CHECKING:
    from cdp_site.models import Account

__all__ = [
    "CompiledMapping",
    "CompiledRoute",
    "CompiledSchema",
    "FieldSpec",
    "compile_snapshot",
    "compiled_schema",
    "event_view",
    "live_schema",
]


def event_view(message: dict[str, Any], anonymous_id: str = "", user_id: str = ""
               ) -> dict[str, Any]:
    """What expressions see of an event: the message as received, plus ``anonymousId`` and
    ``userId`` from the stored columns when the message lacks them (a tag hit whose visitor
    id came from its cookie)."""
    if (anonymous_id and "anonymousId" not in message) or (user_id and "userId" not in message):
        message = dict(message)
        if anonymous_id:
            message.setdefault("anonymousId", anonymous_id)
        if user_id:
            message.setdefault("userId", user_id)
    return message


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


API_STREAM = "api"


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
    if API_STREAM not in schema.mappings:
        # Writes through the profile API (PATCH /api/v1/profiles/{field}/{value}) arrive on
        # the `api` stream as {field: value}: every field maps from its own name, unless the
        # account mapped that stream itself.
        for name, spec in fields.items():
            schema.mappings.setdefault(API_STREAM, []).append(
                CompiledMapping(spec, compile_expression(f"`{name}`"), None))
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
