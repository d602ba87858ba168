"""Reading profiles: the profile API and the profile pages both read through these functions,
and every value they hand out passes through a ``PiiPolicy`` (profiles.masking).

Resolution is profiles.processing.identity's: ``find_profile`` (an identifier value -> its profile)
and
``surviving_profile`` (an id, merged-away ones included -> the survivor).

Search
------
``search_profiles`` matches identifier values through the identifier table's unique index
``(account, field, value) WHERE active``, probing it once per identifier field:

- exact matches on every identifier field, for everyone;
- prefix matches (``jo`` finds ``john@example.com``) from ``PREFIX_MIN`` characters on, as an
  index range ``value >= q AND value < q || U+10FFFF`` re-checked with ``starts_with``. Only
  where the database's collation orders text by code point (C, POSIX, C.UTF-8: what the
  embedded PostgreSQL and our servers use), because only there is that range exactly the
  values starting with ``q``; elsewhere search is exact only. And never on PII fields for a
  reader without ``pii.view``: a prefix search would let them spell out a masked email one
  letter at a time.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass, field
from datetime import datetime
from functools import cache
from typing import TYPE_CHECKING, Any

from django.db import connection
from django.db.models import Q, QuerySet

from cdp_site.hooks import hooks
from profiles.calculated import attributes as calculated
from profiles.identifiers import matching_values
from profiles.masking import PiiPolicy
from profiles.models import Field, Identifier, IdentityLog, Profile, ProfileEvent, RawEvent
from profiles.processing.consent import profile_consents
from profiles.processing.identity import find_profile, identifier_problem, surviving_profile
from profiles.schema.compiled import live_schema

if TYPE_CHECKING:
    from cdp_site.models import Account
    from cdp_site.tenancy import Actor

__all__ = [
    "PREFIX_MIN",
    "FieldInfo",
    "IdentityStory",
    "field_catalog",
    "identifier_fields",
    "identifiers_by_field",
    "identity_story",
    "merged_profile_ids",
    "prefix_search_supported",
    "profile_by_id",
    "profile_by_identifier",
    "profile_document",
    "profile_document_values",
    "profile_events",
    "profile_summary",
    "recent_profiles",
    "search_profiles",
]

PREFIX_MIN = 3
MAX_IDENTIFIERS_SHOWN = 200
_TOP = "\U0010ffff"
_CODEPOINT_COLLATIONS = frozenset({"c", "posix", "c.utf-8", "c.utf8", "ucs_basic"})


# --------------------------------------------------------------------------- the schema's view


@dataclass(frozen=True)
class FieldInfo:
    """What the pages show about a field next to its value."""

    name: str
    type: str = "string"
    description: str = ""
    is_pii: bool = False
    identifier_rank: int | None = None


def field_catalog(account: Account) -> dict[str, FieldInfo]:
    """The account's fields (the draft's, overlaid by the live schema's types, identifier
    ranks and PII flags, since processing uses those)."""
    out: dict[str, FieldInfo] = {}
    for f in Field.objects.for_account(account).only(
            "name", "type", "description", "is_pii", "is_identifier", "identifier_rank"):
        out[f.name] = FieldInfo(f.name, f.type, f.description, f.is_pii,
                                f.identifier_rank if f.is_identifier else None)
    schema = live_schema(account)
    if schema is not None:
        for name, spec in schema.fields.items():
            draft = out.get(name)
            out[name] = FieldInfo(
                name, spec.type, draft.description if draft else "",
                spec.is_pii or bool(draft and draft.is_pii),
                spec.identifier_rank if spec.identifier_rank is not None
                else (draft.identifier_rank if draft else None))
    return out


def _field_order(catalog: dict[str, FieldInfo]) -> Any:
    """Sort key: identifier fields by rank first, then every other field by name."""

    def key(name: str) -> tuple[int, int, str]:
        info = catalog.get(name)
        rank = info.identifier_rank if info is not None else None
        return (0, rank, name) if rank is not None else (1, 0, name)

    return key


_IDENTIFIER_FIELDS = """
WITH RECURSIVE f(field) AS (
    (SELECT field FROM profiles_identifier WHERE account_id = %(account)s AND active
     ORDER BY field LIMIT 1)
    UNION ALL
    SELECT (SELECT i.field FROM profiles_identifier i
            WHERE i.account_id = %(account)s AND i.active AND i.field > f.field
            ORDER BY i.field LIMIT 1)
    FROM f WHERE f.field IS NOT NULL
)
SELECT field FROM f WHERE field IS NOT NULL
"""


def identifier_fields(account: Account, catalog: dict[str, FieldInfo] | None = None
                      ) -> list[str]:
    """Identifier fields: the schema's and any that identifiers are stored under (a loose
    index scan, one probe per field name); strongest first."""
    catalog = field_catalog(account) if catalog is None else catalog
    names = {name for name, info in catalog.items() if info.identifier_rank is not None}
    with connection.cursor() as cursor:
        cursor.execute(_IDENTIFIER_FIELDS, {"account": account.pk})
        names.update(row[0] for row in cursor.fetchall())
    return sorted(names, key=_field_order(catalog))


# --------------------------------------------------------------------------- one profile


def profile_by_identifier(account: Account, field_name: str, value: str) -> Profile | None:
    """The (surviving) profile an identifier value points at, compared normalised
    (``profiles.identifiers``: ``Ann@Example.com`` finds ``ann@example.com``)."""
    found = find_profile(account, field_name, value)
    if found is not None or identifier_problem(value):
        return found
    rows, condition = matching_values(
        Identifier.objects.for_account(account).filter(field=field_name, active=True), value)
    ident = rows.filter(condition).order_by("-last_seen", "id").only("profile_id").first()
    return surviving_profile(account, ident.profile_id) if ident is not None else None


def profile_by_id(account: Account, profile_id: int) -> Profile | None:
    """A profile by id; a merged-away id gives the profile it merged into."""
    return surviving_profile(account, profile_id)


def merged_profile_ids(profile: Profile) -> list[int]:
    """Ids of the profiles merged into this one (merges repoint ``merged_into`` to the final
    survivor, so one level is all of them)."""
    return list(Profile.objects.for_account(profile.account_id)
                .filter(merged_into=profile).order_by("id").values_list("id", flat=True))


def identifiers_by_field(profile: Profile, catalog: dict[str, FieldInfo]
                         ) -> dict[str, list[Identifier]]:
    """The profile's active identifiers grouped by field (strongest field first), each field's
    most recently seen first."""
    rows = (Identifier.objects.filter(account_id=profile.account_id, profile=profile,
                                      active=True)
            .order_by("field", "-last_seen", "value")[:MAX_IDENTIFIERS_SHOWN])
    grouped: dict[str, list[Identifier]] = defaultdict(list)
    for ident in rows:
        grouped[ident.field].append(ident)
    return {name: grouped[name] for name in sorted(grouped, key=_field_order(catalog))}


def health(profile: Profile, account: Account) -> dict[str, Any]:
    return {
        "conflicts": profile.conflicts,
        "compactions": profile.compactions,
        "identifier_count": profile.identifier_count,
        "identifier_limit": account.max_identifiers_per_profile,
        "event_count": profile.event_count,
        "size": profile.size,
    }


def profile_document_values(profile: Profile, policy: PiiPolicy,
                            catalog: dict[str, FieldInfo]) -> dict[str, Any]:
    """The profile's field values, identifier fields first (by rank), masked for the reader."""
    order = _field_order(catalog)
    values = profile.field_values or {}
    return policy.fields({name: values[name] for name in sorted(values, key=order)})


def profile_document(profile: Profile, policy: PiiPolicy, account: Account,
                     catalog: dict[str, FieldInfo] | None = None, *,
                     actor: Actor | None = None) -> dict[str, Any]:
    """The profile API's answer (PROTOCOLS.md §5), masked for the reader. With the reader
    (``actor``), the apps above add what they know of the profile through
    ``STRATA_PROFILE_DOCUMENT_HOOKS`` (its audiences, its experience assignments)."""
    catalog = field_catalog(account) if catalog is None else catalog
    grouped = identifiers_by_field(profile, catalog)
    merged = merged_profile_ids(profile)
    document = {
        "id": profile.pk,
        "fields": profile_document_values(profile, policy, catalog),
        "identifiers": policy.identifiers(
            {name: [i.value for i in idents] for name, idents in grouped.items()}),
        "audiences": [],
        "experiences": [],
        "calculated_attributes": calculated_values(profile, policy, account),
        "consents": consent_document(profile, account),
        "updated_at": profile.updated_at,
        "first_seen": profile.first_seen,
        "last_seen": profile.last_seen,
        "health": health(profile, account),
        "merged_profile_ids": merged,
        "pii_masked": policy.masking,
    }
    if actor is not None:
        for hook in hooks("STRATA_PROFILE_DOCUMENT_HOOKS"):
            document.update(hook(actor, profile, merged))
    return document


def calculated_rows(profile: Profile, policy: PiiPolicy, account: Account
                    ) -> list[dict[str, Any]]:
    """Every active calculated attribute with the profile's value (None: no matching event
    in its window); a most frequent value of a PII property is masked like the field."""
    rows = calculated.profile_attribute_rows(account.pk, profile)
    for row in rows:
        row["masked"] = row["aggregate_code"] == "most_frequent" \
            and policy.masks(row["property"]) and row["value"] is not None
        if row["masked"]:
            row["value"] = policy.value(row["property"], row["value"])
    return rows


def calculated_values(profile: Profile, policy: PiiPolicy, account: Account) -> dict[str, Any]:
    """The profile's calculated attribute values by name (masked as ``calculated_rows``)."""
    return {r["name"]: r["value"] for r in calculated_rows(profile, policy, account)
            if r["value"] is not None}


def consent_document(profile: Profile, account: Account) -> list[dict[str, Any]]:
    """The profile's consent choices, by purpose."""
    return [{"purpose": c.purpose, "granted": c.granted, "at": c.at}
            for c in profile_consents(account.pk, profile.pk)]


# --------------------------------------------------------------------------- search


@cache
def _collation_for(alias: str) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT datcollate FROM pg_database WHERE datname = current_database()")
        return str(cursor.fetchone()[0])


def prefix_search_supported() -> bool:
    """Whether the database orders text by code point, so an index range is a prefix match."""
    return _collation_for(connection.alias).lower() in _CODEPOINT_COLLATIONS


def _identifier_matches(account: Account, q: str, fields: list[str], policy: PiiPolicy,
                        prefix: bool) -> QuerySet:
    rows, exact = matching_values(Identifier.objects.for_account(account), q)
    condition = Q(field__in=fields) & exact
    if prefix and len(q) >= PREFIX_MIN and prefix_search_supported():
        allowed = [name for name in fields if not policy.masks(name)]
        if allowed:
            condition |= Q(field__in=allowed, value__gte=q, value__lt=q + _TOP,
                           value__startswith=q)
    return rows.filter(condition, active=True).values("profile_id")


def search_profiles(account: Account, q: str, policy: PiiPolicy, *,
                    field_name: str | None = None, prefix: bool = True,
                    fields: list[str] | None = None) -> QuerySet:
    """Live profiles holding an identifier equal to ``q`` (or starting with it, see the module
    docstring), on ``field_name`` or on any identifier field (``fields``, when the caller has
    them already); most recently seen first. An empty ``q`` lists the most recently seen
    profiles. The merged state (``states``) is not loaded."""
    q = q.strip()
    if not q:
        return recent_profiles(account)
    if field_name:
        fields = [field_name]
    elif fields is None:
        fields = identifier_fields(account)
    if not fields:
        return Profile.objects.none()
    matches = _identifier_matches(account, q, fields, policy, prefix)
    return (Profile.objects.for_account(account)
            .filter(pk__in=matches, merged_into__isnull=True)
            .defer("states").order_by("-last_seen", "-id"))


def recent_profiles(account: Account) -> QuerySet:
    return (Profile.objects.for_account(account).filter(merged_into__isnull=True)
            .defer("states").order_by("-last_seen", "-id"))


def profile_summary(profile: Profile, policy: PiiPolicy, catalog: dict[str, FieldInfo],
                    identifiers: dict[str, list[str]]) -> dict[str, Any]:
    """One search result: its identifiers (masked) and counters."""
    order = _field_order(catalog)
    return {
        "id": profile.pk,
        "identifiers": policy.identifiers(
            {name: identifiers[name] for name in sorted(identifiers, key=order)}),
        "first_seen": profile.first_seen,
        "last_seen": profile.last_seen,
        "event_count": profile.event_count,
        "identifier_count": profile.identifier_count,
        "conflicts": profile.conflicts,
    }


def summaries(profiles: list[Profile], policy: PiiPolicy, account: Account,
              catalog: dict[str, FieldInfo] | None = None) -> list[dict[str, Any]]:
    """Search results for a page of profiles: one query for all their identifiers."""
    catalog = field_catalog(account) if catalog is None else catalog
    grouped: dict[int, dict[str, list[str]]] = {p.pk: defaultdict(list) for p in profiles}
    if profiles:
        rows = (Identifier.objects.for_account(account)
                .filter(profile_id__in=list(grouped), active=True)
                .order_by("profile_id", "field", "-last_seen", "value")
                .values_list("profile_id", "field", "value"))
        for pid, name, value in rows:
            grouped[pid][name].append(value)
    return [profile_summary(p, policy, catalog, grouped[p.pk]) for p in profiles]


# --------------------------------------------------------------------------- timeline


def profile_events(profile: Profile) -> QuerySet:
    """The profile's events, newest first (merged-away profiles' events were moved here)."""
    return (ProfileEvent.objects.filter(account_id=profile.account_id, profile=profile)
            .order_by("-at", "-id"))


def event_document(event: ProfileEvent, policy: PiiPolicy,
                   catalog: dict[str, FieldInfo] | None = None) -> dict[str, Any]:
    """One timeline entry; its properties (the values it mapped to fields) masked for the
    reader, identifier fields first when the catalog is given."""
    properties = event.properties or {}
    if catalog is not None:
        properties = {name: properties[name]
                      for name in sorted(properties, key=_field_order(catalog))}
    return {
        "id": event.pk,
        "raw_event_id": event.raw_event_id,
        "stream": event.stream,
        "event": event.event,
        "at": event.at,
        "properties": policy.fields(properties),
    }


# --------------------------------------------------------------------------- identity


@dataclass
class LinkedIdentifier:
    field: str
    value: str  # masked for the reader
    first_seen: datetime
    last_seen: datetime
    active: bool
    first_event: dict[str, Any] | None = None  # the event it was first seen in, when known


@dataclass
class IdentityEntry:
    kind: str  # merge | conflict | compaction
    at: datetime
    profile_id: int
    other_profile_id: int | None
    field: str
    value: str  # masked for the reader
    reason: str
    raw_event_id: int | None
    event: dict[str, Any] | None = None


@dataclass
class IdentityStory:
    """Why this profile's identifiers are linked: each identifier with the event it first
    came in with, and the log of merges (with the event that caused each), conflicts and
    compactions."""

    profile_id: int
    merged_profile_ids: list[int]
    identifiers: list[LinkedIdentifier] = field(default_factory=list)
    log: list[IdentityEntry] = field(default_factory=list)
    log_more: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _raw_events(account: Account, ids: set[int]) -> dict[int, dict[str, Any]]:
    """What the explanation shows of the raw events behind identity changes (no message
    body: it may carry PII that is not mapped to any field)."""
    if not ids:
        return {}
    rows = (RawEvent.objects.for_account(account).filter(id__in=sorted(ids))
            .values("id", "stream", "type", "event", "event_at", "received_at"))
    return {row["id"]: {"raw_event_id": row["id"], "stream": row["stream"],
                        "type": row["type"], "event": row["event"],
                        "event_at": row["event_at"], "received_at": row["received_at"]}
            for row in rows}


def _first_events(profile: Profile, idents: list[Identifier]) -> dict[tuple[str, str], int]:
    """For each identifier, the profile event it was first seen in: an event at the
    identifier's ``first_seen`` whose mapped values carry it (one indexed query)."""
    times = sorted({i.first_seen for i in idents})
    if not times:
        return {}
    wanted = {(i.field, i.value) for i in idents}
    out: dict[tuple[str, str], int] = {}
    events = (ProfileEvent.objects.filter(account_id=profile.account_id, profile=profile,
                                          at__in=times)
              .order_by("at", "id").values_list("raw_event_id", "at", "properties"))
    first_at = {(i.field, i.value): i.first_seen for i in idents}
    for raw_id, at, properties in events:
        for name, value in (properties or {}).items():
            for item in value if isinstance(value, list) else [value]:
                key = (name, str(item))
                if key in wanted and key not in out and first_at[key] == at:
                    out[key] = raw_id
    return out


def identity_story(profile: Profile, policy: PiiPolicy, account: Account, *,
                   limit: int = 100, catalog: dict[str, FieldInfo] | None = None
                   ) -> IdentityStory:
    catalog = field_catalog(account) if catalog is None else catalog
    merged = merged_profile_ids(profile)
    family = [profile.pk, *merged]
    idents = list(
        Identifier.objects.filter(account_id=account.pk, profile=profile)
        .order_by("-active", "field", "-last_seen", "value")[:MAX_IDENTIFIERS_SHOWN])
    idents.sort(key=lambda i: (not i.active, _field_order(catalog)(i.field), i.first_seen))
    first = _first_events(profile, [i for i in idents if i.active])
    entries = list(
        IdentityLog.objects.for_account(account)
        .filter(Q(profile_id__in=family) | Q(other_id__in=family))
        .order_by("-created_at", "-id")[: limit + 1])
    more = len(entries) > limit
    entries = entries[:limit]
    raw_ids = {e.raw_event_id for e in entries if e.raw_event_id} | set(first.values())
    raw = _raw_events(account, raw_ids)
    story = IdentityStory(profile_id=profile.pk, merged_profile_ids=merged, log_more=more)
    for ident in idents:
        raw_id = first.get((ident.field, ident.value))
        story.identifiers.append(LinkedIdentifier(
            field=ident.field, value=policy.value(ident.field, ident.value),
            first_seen=ident.first_seen, last_seen=ident.last_seen, active=ident.active,
            first_event=raw.get(raw_id, {"raw_event_id": raw_id}) if raw_id else None))
    for entry in entries:
        story.log.append(IdentityEntry(
            kind=entry.kind, at=entry.created_at, profile_id=entry.profile_id,
            other_profile_id=entry.other_id, field=entry.field,
            value=policy.value(entry.field, entry.value) if entry.value else "",
            reason=entry.reason, raw_event_id=entry.raw_event_id,
            event=raw.get(entry.raw_event_id) if entry.raw_event_id else None))
    return story
