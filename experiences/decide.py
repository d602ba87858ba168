"""Decisions: which variant of each experience a visitor gets, and why.

``decide(account_id, visitor, identifiers=..., attributes=..., keys=...)`` answers a
``VisitorDecision``: the visitor's profile, their API-accessible audiences, and one ``Decision``
per experience asked about (every experience of the account's configuration when ``keys`` is
None). It is the one function behind ``POST /api/v1/decide`` and OFREP
(``experiences.decisions.views``).

Cost: the configuration comes from the in-process snapshot (``experiences.config``), and the
visitor from **one** indexed query (``VISITOR_SQL``) that returns together:

- the profile: the first of the visitor's keys (the explicit ``identifiers`` in the order
  given, then the uid as the ``STRATA_VISITOR_IDENTIFIER_FIELD`` identifier, ``_uid`` by
  default) that an active identifier holds, followed to the survivor of a merge;
- the profile's API-accessible audiences (slugs), the only audiences sites may see and the
  only ones targeting can name;
- whether the profile withheld personalization consent (a ``ProfileConsent`` row for
  ``STRATA_PERSONALIZATION_PURPOSE`` with ``granted`` false; no row means no objection);
- the visitor's stored assignments: by this uid first, then by any of the profile's cookies
  (its ``_uid`` identifiers), by the profile, or by a profile merged into it, so a visitor
  keeps their variant when their anonymous profile merges into a known one.

New A/B assignments are stored with one INSERT … ON CONFLICT DO NOTHING before the answer
(``Assignment``: unique per experience and visitor), so a visitor keeps their variant when the
weights, a bandit's allocation or the traffic allocation change later.

Rules, in order (the reason is OpenFeature's; ``detail`` says which rule):

1. an experience that is not live serves one variant to everyone: a paused one its base
   (``DISABLED``, ``paused``), a completed one its winner (``STATIC``, ``rollout``) or its base
   (``DISABLED``, ``completed``);
2. a visitor who withheld personalization consent gets the base variant (``STATIC``,
   ``consent_withheld``), no stored or new assignment, and no audiences in the answer;
3. a stored assignment whose variant still exists wins (``SPLIT``, ``sticky``): over new
   weights, bandit reweighting, traffic allocation and targeting;
4. A/B: a visitor outside the target audiences gets the base (``STATIC``, ``not_targeted``);
   else the traffic allocation and the split decide by GrowthBook's hash of the experience
   seed and the uid (``experiences.bucketing.assign``): outside the allocation, the base
   (``STATIC``, ``not_in_traffic``); inside, the variant (``SPLIT``, ``assigned``), stored;
5. segmented: the first segment (by priority) whose audience the visitor is in
   (``TARGETING_MATCH``, ``audience:<slug>``), else the base (``STATIC``, ``no_segment``);
   nothing is stored: the next event that changes the visitor's audiences changes the answer.

Live ``attributes`` (validated by the views: a JSON object) target this decision, as
GrowthBook's, OpenFeature's and Contentstack's context attributes do: the attributes whose
names are fields of the live schema, typed as the field (a value that does not fit is
ignored, as is a name that is no field), overlay the visitor's stored field values (none for
a visitor without a profile), and the API-accessible audiences the asked-about experiences
target (A/B target audiences, unless a sticky assignment decides first; segment audiences)
whose rules read one of them, directly or through an included audience, are evaluated with
the real-time compiled predicates (``audiences.realtime.live_memberships``). Audiences whose
rules read no given attribute keep the stored membership. The answer's ``audiences`` are the
ones this decision used. Nothing is written: the profile and its memberships change only
when the attribute is sent as an event (or a profile update) and processed.

A request without attributes costs nothing more; one with attributes, when some experience
asked about targets an audience, one query for the live schema, and when an attribute is a
field that such an audience reads, the cached compiled audiences' check and the visitor's
stored values (a few indexed queries).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import psycopg
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models import Q
from django.utils import timezone

from audiences.models import Audience, AudienceMembership
from audiences.realtime import live_memberships
from cdp_site.db import live_connection
from experiences.bucketing import assign
from experiences.config import (
    SERVE_SEGMENTS,
    SERVE_SPLIT,
    SERVE_WINNER,
    AccountConfig,
    ExperienceConfig,
    VariantConfig,
    active_config,
)
from experiences.models import Assignment
from profiles.models import Identifier, Profile, ProfileConsent

if TYPE_CHECKING:
    from cdp_site.tenancy import Actor

MAX_PROFILE_ASSIGNMENTS = 1000  # rows read for one profile's document

__all__ = [
    "Decision",
    "VisitorDecision",
    "decide",
    "decide_with_config",
    "visitor_keys",
]

# OpenFeature's resolution reasons (the ones decisions use).
SPLIT = "SPLIT"
TARGETING_MATCH = "TARGETING_MATCH"
STATIC = "STATIC"
DISABLED = "DISABLED"
DEFAULT = "DEFAULT"

MAX_VISITOR_LENGTH = 300  # Assignment.visitor
MAX_IDENTIFIER_LENGTH = 256  # Identifier.value


@dataclass(frozen=True, slots=True)
class Decision:
    experience_key: str
    experience_uid: str
    variant_key: str | None
    variant_uid: str | None
    value: Any
    content: Any
    reason: str  # OpenFeature reason: SPLIT, TARGETING_MATCH, STATIC, DISABLED, DEFAULT
    in_experiment: bool  # counted in the experiment's results (an A/B split assignment)
    detail: str = ""  # which rule: assigned, sticky, not_targeted, paused, rollout, …
    value_type: str = "string"


@dataclass(frozen=True, slots=True)
class VisitorDecision:
    visitor: str
    profile_id: int | None
    audiences: list[str]  # API-accessible audience slugs (none when consent is withheld)
    decisions: list[Decision]
    consent_withheld: bool = False
    missing: list[str] = field(default_factory=list)  # asked-for keys with no experience


@dataclass(frozen=True, slots=True)
class _Visitor:
    profile_id: int | None
    audiences: frozenset[str]
    consent_withheld: bool
    assigned: Mapping[int, int]  # experience id -> variant id


def _settings() -> tuple[str, str]:
    return (getattr(settings, "STRATA_VISITOR_IDENTIFIER_FIELD", "_uid"),
            getattr(settings, "STRATA_PERSONALIZATION_PURPOSE", "personalization"))


_T = {
    "identifier": Identifier._meta.db_table,
    "profile": Profile._meta.db_table,
    "membership": AudienceMembership._meta.db_table,
    "audience": Audience._meta.db_table,
    "consent": ProfileConsent._meta.db_table,
    "assignment": Assignment._meta.db_table,
}

# The one query for a visitor. %(f)s/%(v)s: the visitor's keys as (identifier field, value),
# strongest first; each is one probe of the unique (account, field, value) index (LATERAL …
# LIMIT 1, which the planner cannot turn into a join over the account's identifiers). The
# profile follows one merge hop (identity repoints identifiers to survivors; a row still
# naming a merged-away profile resolves to its survivor).
_VISITOR_SQL = """
WITH p AS (
  SELECT coalesce(pr.merged_into_id, pr.id) AS id
    FROM {keys}
    CROSS JOIN LATERAL (
      SELECT i.profile_id FROM {identifier} i
       WHERE i.account_id = %(a)s AND i.field = k.field AND i.value = k.value AND i.active
       LIMIT 1) i
    JOIN {profile} pr ON pr.id = i.profile_id
   ORDER BY k.n LIMIT 1
), s AS (
  SELECT experience_id, variant_id, 0 AS pref, assigned_at, id
    FROM {assignment} WHERE account_id = %(a)s AND visitor = %(u)s
  UNION ALL
  SELECT s.experience_id, s.variant_id, 1, s.assigned_at, s.id
    FROM p JOIN {identifier} i ON i.profile_id = p.id AND i.field = %(uf)s
    JOIN {assignment} s ON s.account_id = %(a)s AND s.visitor = i.value
   WHERE i.value <> %(u)s
  UNION ALL
  SELECT s.experience_id, s.variant_id, 2, s.assigned_at, s.id
    FROM {assignment} s
   WHERE s.account_id = %(a)s AND s.profile_id IS NOT NULL AND s.profile_id IN (
         SELECT id FROM p UNION ALL
         SELECT pr.id FROM {profile} pr JOIN p ON pr.merged_into_id = p.id)
)
SELECT (SELECT id FROM p),
       ARRAY(SELECT au.slug FROM p JOIN {membership} m ON m.profile_id = p.id
               JOIN {audience} au ON au.id = m.audience_id
              WHERE au.api_accessible AND NOT au.archived ORDER BY au.slug),
       EXISTS(SELECT 1 FROM p JOIN {consent} c ON c.profile_id = p.id
               WHERE c.purpose = %(cp)s AND NOT c.granted),
       ARRAY(SELECT ARRAY[x.experience_id, x.variant_id] FROM (
               SELECT DISTINCT ON (experience_id) experience_id, variant_id FROM s
                ORDER BY experience_id, pref, assigned_at, id) x)
"""
VISITOR_SQL = _VISITOR_SQL.format(
    keys="unnest(%(f)s::text[], %(v)s::text[]) WITH ORDINALITY AS k(field, value, n)", **_T)
# The usual request names the uid only: the same query with scalar parameters (psycopg dumps
# a list parameter in Python, a string in C).
VISITOR_UID_SQL = _VISITOR_SQL.format(
    keys="(VALUES (%(uf)s::text, %(u)s::text, 1)) AS k(field, value, n)", **_T)

# New assignments, all of one request in one statement; a concurrent request that stored the
# same visitor's assignment first wins (it chose the same variant by the same hash).
INSERT_SQL = """
INSERT INTO {assignment} (account_id, experience_id, visitor, profile_id, variant_id, phase,
                          reason, assigned_at)
SELECT %(a)s, e, %(u)s, %(p)s, v, n, 'split', %(at)s
  FROM unnest(%(e)s::bigint[], %(v)s::bigint[], %(n)s::int[]) AS x(e, v, n)
ON CONFLICT (experience_id, visitor) DO NOTHING
""".format(**_T)


# The cursor is kept on Django's connection wrapper, which does not declare it.
_CURSOR_ATTR = "_strata_decide_cursor"


def _cursor() -> tuple[Any, psycopg.Cursor[Any]]:
    """This thread's database wrapper and a plain psycopg cursor on its connection, kept with
    it (the statements are prepared once per connection where the settings allow). The
    wrapper is looked up once: each attribute read through ``django.db.connection`` costs a
    thread-local lookup."""
    db = connections[DEFAULT_DB_ALIAS]
    raw = live_connection(db)  # a connection the server ended is replaced, not used
    cursor = getattr(db, _CURSOR_ATTR, None)
    if cursor is None or cursor.connection is not raw or cursor.closed:
        cursor = psycopg.Cursor(raw)
        setattr(db, _CURSOR_ATTR, cursor)
    return db, cursor


def visitor_keys(visitor: str, identifiers: Mapping[str, Any] | None
                 ) -> tuple[list[str], list[str]]:
    """The (fields, values) the visitor is looked up by: the identifiers in the order given,
    then the uid as the visitor identifier field. Values that cannot be identifiers are left
    out (the views refuse them first)."""
    uid_field, _purpose = _settings()
    fields: list[str] = []
    values: list[str] = []
    for name, value in (identifiers or {}).items():
        if isinstance(value, str | int) and not isinstance(value, bool):
            text = str(value)
            if text and len(text.encode()) <= MAX_IDENTIFIER_LENGTH:
                fields.append(str(name))
                values.append(text)
    if visitor and len(visitor.encode()) <= MAX_IDENTIFIER_LENGTH:
        fields.append(uid_field)
        values.append(visitor)
    return fields, values


def _load_visitor(account_id: int, visitor: str, identifiers: Mapping[str, Any] | None
                  ) -> _Visitor:
    uid_field, purpose = _settings()
    params = {"a": account_id, "u": visitor, "uf": uid_field, "cp": purpose}
    if identifiers or len(visitor.encode()) > MAX_IDENTIFIER_LENGTH:
        statement = VISITOR_SQL
        params["f"], params["v"] = visitor_keys(visitor, identifiers)
    else:
        statement = VISITOR_UID_SQL
    db, cursor = _cursor()
    with db.wrap_database_errors:
        cursor.execute(statement, params, prepare=True)
        row = cursor.fetchone()
    assert row is not None  # the statement's last SELECT has no FROM: always one row
    profile_id, audiences, withheld, pairs = row
    return _Visitor(profile_id, frozenset(audiences), bool(withheld),
                    {pair[0]: pair[1] for pair in pairs})


def _store(account_id: int, visitor: str, profile_id: int | None,
           new: list[tuple[int, int, int]]) -> None:
    params = {"a": account_id, "u": visitor, "p": profile_id, "at": timezone.now(),
              "e": [row[0] for row in new], "v": [row[1] for row in new],
              "n": [row[2] for row in new]}
    db, cursor = _cursor()
    with db.wrap_database_errors:
        cursor.execute(INSERT_SQL, params, prepare=True)


# --------------------------------------------------------------------------- the rules


def _answer(exp: ExperienceConfig, variant: VariantConfig | None, reason: str, detail: str,
            in_experiment: bool = False) -> Decision:
    if variant is None:  # an experience without a base to fall back on: no variant at all
        return Decision(exp.key, exp.uid, None, None, None, None, DEFAULT, False,
                        detail or "no_variant", exp.value_type)
    return Decision(exp.key, exp.uid, variant.key, variant.uid,
                    variant.key if variant.value is None else variant.value, variant.content,
                    reason, in_experiment, detail, exp.value_type)


def _not_live(exp: ExperienceConfig) -> Decision:
    if exp.serve == SERVE_WINNER:
        return _answer(exp, exp.winner, STATIC, "rollout")
    return _answer(exp, exp.base, DISABLED, exp.reason or exp.status)


def _sticky(exp: ExperienceConfig, visitor: _Visitor) -> VariantConfig | None:
    variant_id = visitor.assigned.get(exp.id)
    if variant_id is None:
        return None
    return next((v for v in exp.variants if v.id == variant_id), None)


def _split(exp: ExperienceConfig, uid: str, visitor: _Visitor,
           new: list[tuple[int, int, int]]) -> Decision:
    kept = _sticky(exp, visitor)
    if kept is not None:
        return _answer(exp, kept, SPLIT, "sticky", True)
    if exp.target_audiences and visitor.audiences.isdisjoint(exp.target_audiences):
        return _answer(exp, exp.base, STATIC, "not_targeted")
    index = assign(exp.seed, uid, exp.weights, exp.traffic_allocation, exp.hash_version) \
        if exp.variants else None
    if index is None:
        return _answer(exp, exp.base, STATIC, "not_in_traffic")
    variant = exp.variants[index]
    new.append((exp.id, variant.id, exp.phase))
    return _answer(exp, variant, SPLIT, "assigned", True)


def _segments(exp: ExperienceConfig, visitor: _Visitor) -> Decision:
    for variant in exp.segments:
        if variant.audience in visitor.audiences:
            return _answer(exp, variant, TARGETING_MATCH, f"audience:{variant.audience}")
    return _answer(exp, exp.base, STATIC, "no_segment")


def _decide_one(exp: ExperienceConfig, uid: str, visitor: _Visitor,
                new: list[tuple[int, int, int]]) -> Decision:
    if not exp.live:
        return _not_live(exp)
    if visitor.consent_withheld:
        return _answer(exp, exp.base, STATIC, "consent_withheld")
    if exp.serve == SERVE_SPLIT:
        return _split(exp, uid, visitor, new)
    if exp.serve == SERVE_SEGMENTS:
        return _segments(exp, visitor)
    return _not_live(exp)


def _with_live_attributes(account_id: int, experiences: Iterable[ExperienceConfig],
                          visitor: _Visitor, attributes: Mapping[str, Any] | None) -> _Visitor:
    """The visitor with the audiences this decision's live attributes place them in or out
    of (see the module's docstring); the same visitor when they change nothing."""
    if not attributes or visitor.consent_withheld:
        return visitor
    wanted: set[str] = set()
    for exp in experiences:
        if exp.serve == SERVE_SEGMENTS or (exp.serve == SERVE_SPLIT
                                           and _sticky(exp, visitor) is None):
            wanted |= exp.api_audiences
    if not wanted:
        return visitor
    found = live_memberships(account_id, visitor.profile_id, attributes, wanted)
    if not found:
        return visitor
    inside = {slug for slug, member in found.items() if member}
    return replace(visitor, audiences=(visitor.audiences - set(found)) | inside)


def _chosen(config: AccountConfig, keys: Iterable[str] | None
            ) -> tuple[list[ExperienceConfig], list[str]]:
    if keys is None:
        return list(config.experiences), []
    found: list[ExperienceConfig] = []
    missing: list[str] = []
    for key in keys:
        exp = config.get(key)
        if exp is None:
            missing.append(key)
        else:
            found.append(exp)
    return found, missing


def decide_with_config(
    config: AccountConfig,
    visitor: str,
    *,
    identifiers: Mapping[str, Any] | None = None,
    attributes: Mapping[str, Any] | None = None,
    keys: Iterable[str] | None = None,
    store: bool = True,
) -> VisitorDecision:
    """``decide`` over a snapshot already in hand (the views read it once for the ETag).
    ``store=False`` writes nothing: the answer is what the visitor would get (the preview)."""
    experiences, missing = _chosen(config, keys)
    found = _load_visitor(config.account_id, visitor, identifiers)
    if attributes:
        found = _with_live_attributes(config.account_id, experiences, found, attributes)
    new: list[tuple[int, int, int]] = []
    decisions = [_decide_one(exp, visitor, found, new) for exp in experiences]
    if new and store:
        _store(config.account_id, visitor, found.profile_id, new)
    audiences = [] if found.consent_withheld else sorted(found.audiences)
    return VisitorDecision(visitor, found.profile_id, audiences, decisions,
                           found.consent_withheld, missing)


def decide(
    account_id: int,
    visitor: str,
    *,
    identifiers: dict | None = None,
    attributes: dict | None = None,
    keys: list[str] | None = None,
) -> VisitorDecision:
    """The visitor's decision for each experience asked about (``keys``: experience keys or
    short uids; None: all of the account's non-draft experiences), storing new assignments.
    Keys with no experience are listed in ``missing``. ``attributes`` target this decision
    only (see the module's docstring)."""
    return decide_with_config(active_config(account_id), visitor, identifiers=identifiers,
                              attributes=attributes, keys=keys)


def profile_document_assignments(actor: Actor, profile: Profile,
                                 merged_ids: list[int]) -> dict[str, Any]:
    """STRATA_PROFILE_DOCUMENT_HOOKS: the profile API lists the profile's experience
    assignments (its own, those of profiles merged into it, and those made for visitor keys
    that are its identifiers), one per experience, the latest first."""
    values = Identifier.objects.filter(account_id=profile.account_id, profile=profile,
                                       active=True).values("value")
    rows = (Assignment.objects.filter(account_id=profile.account_id)
            .filter(Q(profile_id__in=[profile.pk, *merged_ids]) | Q(visitor__in=values))
            .select_related("experience", "variant").order_by("-assigned_at", "-id"))
    found: dict[int, dict[str, Any]] = {}
    for row in rows[:MAX_PROFILE_ASSIGNMENTS]:
        if row.experience_id in found:
            continue
        exp = row.experience
        found[row.experience_id] = {
            "experience": exp.key, "experience_uid": exp.uid, "name": exp.name,
            "status": exp.status, "variant": row.variant.key, "variant_uid": row.variant.uid,
            "phase": row.phase, "current_phase": row.phase == exp.phase,
            "assigned_at": row.assigned_at}
    return {"experiences": list(found.values())}
