"""Impressions and conversions (issue 6, part 5; docs/personalize.md, "Impressions and
conversions").

- ``record_impressions`` / ``record_impression``: a visitor saw the variant they were given.
  One ``Impression`` row per visitor and experience (``count`` counts them all; ``first_at``
  opens the 30-day conversion window). An impression for a variant the visitor was not given
  (no assignment, another variant, an unknown variant) is ignored and counted on a
  ``DataQualityWarning`` (``impression_not_assigned``).
- ``record(batch)``: the pipeline step (last in ``STRATA_PIPELINE_STEPS``). It records the
  impressions the tag sends as events (Segment's ``Experiment Viewed``: properties
  ``experiment_id`` and ``variation_id``, key or short uid), then the conversions: events
  matching a goal of a running experience (event name, ``where`` conditions, stream when set)
  from visitors with an impression no more than 30 days before. One ``Conversion`` row per
  visitor, experience and goal, attributed to the impression's (assigned) variant and phase;
  ``count`` counts every such event (the all-conversions metric). A goal event from a visitor
  who was assigned but has no impression is not a conversion; it is counted on a
  ``DataQualityWarning`` (``conversion_without_impression``).

Visitors are matched by the assignment's visitor key (the decision's targeting key: the tag's
``anonymousId``, a Personalize user uid), then by the other ``_uid`` identifiers of the
event's profile (another cookie of the same person, a uid merged into it), then by profile.
Everything is set-based: a batch costs a handful of statements whatever its size.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import connection
from django.utils import timezone

from audiences.compiler import CompileContext, EventView, ProfileView, compile_predicate
from audiences.rules import RuleError, RuleSchema
from experiences.config import SERVE_SEGMENTS, ExperienceConfig, VariantConfig, active_config
from experiences.models import (
    Assignment,
    Conversion,
    DataQualityWarning,
    Experience,
    Impression,
)
from profiles.models import Identifier, ProfileRebuild

if TYPE_CHECKING:
    from collections.abc import Callable

    from profiles.processing.batch import Batch, PipelineEvent

__all__ = [
    "CONVERSION_WINDOW",
    "IMPRESSION_EVENTS",
    "GoalEvent",
    "ImpressionIn",
    "follow_visitor",
    "record",
    "record_conversions",
    "record_impression",
    "record_impressions",
]

CONVERSION_WINDOW = timedelta(days=30)
# The event names an impression arrives under: Segment's A/B testing spec ("Experiment
# Viewed", also what GrowthBook's and Optimizely's Segment integrations send) and strata.js'.
IMPRESSION_EVENTS = frozenset({"Experiment Viewed", "$experience_impression"})
EXPERIENCE_PROPERTIES = ("experiment_id", "experience")
VARIANT_PROPERTIES = ("variation_id", "variant")

COUNTED = "counted"
REPEAT = "repeat"
NOT_ASSIGNED = "ignored_not_assigned"
NOT_RUNNING = "ignored_not_running"
UNKNOWN_EXPERIENCE = "unknown_experience"

WARN_IMPRESSION = "impression_not_assigned"
WARN_CONVERSION = "conversion_without_impression"


@dataclass(frozen=True)
class ImpressionIn:
    """An impression as reported: experience and variant by key or short uid."""

    experience: str
    variant: str
    visitor: str
    at: datetime
    profile_id: int | None = None


@dataclass(frozen=True)
class GoalEvent:
    """An event that may reach a goal: its name, properties and stream, who sent it."""

    name: str
    properties: Mapping[str, Any]
    stream: str
    at: datetime
    visitors: tuple[str, ...]  # anonymousId, userId: candidate visitor keys
    profile_id: int | None = None
    raw_event_id: int | None = None


# --------------------------------------------------------------------------- impressions


def record_impression(account_id: int, experience: str, variant: str, visitor: str,
                      at: datetime | None = None) -> str:
    """One impression: ``counted`` (the visitor's first for the experience), ``repeat``,
    ``ignored_not_assigned`` (and a data-quality warning), ``ignored_not_running`` or
    ``unknown_experience``."""
    return record_impressions(
        account_id, [ImpressionIn(experience, variant, visitor, at or timezone.now())])[0]


@dataclass
class _Accepted:
    experience_id: int
    variant_id: int
    phase: int
    visitor: str  # the assignment's visitor key
    profile_id: int | None
    positions: list[int]
    first_at: datetime
    last_at: datetime


def record_impressions(account_id: int, items: list[ImpressionIn]) -> list[str]:
    """Record impressions in bulk (one outcome per item, in order; see record_impression)."""
    outcomes = [""] * len(items)
    config = active_config(account_id)
    wanted: list[tuple[int, ExperienceConfig]] = []
    for position, item in enumerate(items):
        exp = config.get(str(item.experience))
        if exp is None:
            outcomes[position] = UNKNOWN_EXPERIENCE
        elif not exp.live:
            outcomes[position] = NOT_RUNNING
        else:
            wanted.append((position, exp))
    if not wanted:
        return outcomes
    assignments = _assignments(account_id, [(exp.id, items[pos]) for pos, exp in wanted])
    accepted: dict[tuple[int, str], _Accepted] = {}
    refused: dict[int, list[dict[str, Any]]] = {}
    for position, exp in wanted:
        item = items[position]
        variant = exp.variant(str(item.variant))
        found = _given(exp, item, variant, assignments)
        if found is None or variant is None or variant.id != found.variant_id:
            outcomes[position] = NOT_ASSIGNED
            refused.setdefault(exp.id, []).append({
                "visitor": item.visitor[:100], "variant": str(item.variant)[:100],
                "assigned": next((v.key for v in exp.variants
                                  if found is not None and v.id == found.variant_id), None),
                "at": item.at.isoformat()})
            continue
        key = (exp.id, found.visitor)
        entry = accepted.get(key)
        if entry is None:
            accepted[key] = _Accepted(exp.id, found.variant_id, found.phase, found.visitor,
                                      found.profile_id or item.profile_id, [position],
                                      item.at, item.at)
        else:
            entry.positions.append(position)
            entry.first_at = min(entry.first_at, item.at)
            entry.last_at = max(entry.last_at, item.at)
    new = _upsert_impressions(account_id, list(accepted.values()))
    for key, entry in accepted.items():
        first, *rest = entry.positions
        outcomes[first] = COUNTED if key in new else REPEAT
        for position in rest:
            outcomes[position] = REPEAT
    _warn(account_id, WARN_IMPRESSION, refused)
    return outcomes


def _given(exp: ExperienceConfig, item: ImpressionIn, variant: VariantConfig | None,
           assignments: Mapping[tuple[int, Any], Assignment]) -> Assignment | None:
    """What the visitor was given: their stored assignment (by visitor key, then profile).
    A segmented experience stores none (the visitor's audiences choose at each decision), so
    any of its variants counts, under the current phase."""
    if exp.serve == SERVE_SEGMENTS:
        if variant is None:
            return None
        return Assignment(experience_id=exp.id, visitor=item.visitor, variant_id=variant.id,
                          phase=exp.phase, profile_id=item.profile_id)
    return assignments.get((exp.id, item.visitor)) or assignments.get(
        (exp.id, item.profile_id))


def _assignments(account_id: int, wanted: list[tuple[int, ImpressionIn]]
                 ) -> dict[tuple[int, Any], Assignment]:
    """Assignments by (experience id, visitor key) and (experience id, profile id): the
    visitor's own first, then any of their profile's (the earliest)."""
    experience_ids = {exp_id for exp_id, _ in wanted}
    visitors = {item.visitor for _, item in wanted}
    rows = list(Assignment.objects.filter(account_id=account_id, experience_id__in=experience_ids,
                                          visitor__in=visitors))
    found: dict[tuple[int, Any], Assignment] = {(a.experience_id, a.visitor): a for a in rows}
    profiles = {item.profile_id for exp_id, item in wanted
                if item.profile_id is not None and (exp_id, item.visitor) not in found}
    if profiles:
        by_profile = (Assignment.objects.filter(account_id=account_id,
                                                experience_id__in=experience_ids,
                                                profile_id__in=profiles)
                      .order_by("-assigned_at", "-id"))
        for a in by_profile:  # the earliest wins: written last
            found[(a.experience_id, a.profile_id)] = a
    return found


_UPSERT_IMPRESSIONS = f"""
INSERT INTO {Impression._meta.db_table} AS i
    (account_id, experience_id, variant_id, phase, visitor, profile_id, first_at, last_at, count)
SELECT %(account)s, e, v, p, vis, pid, f, l, n
FROM unnest(%(exp)s::bigint[], %(var)s::bigint[], %(phase)s::int[], %(vis)s::text[],
            %(pid)s::bigint[], %(first)s::timestamptz[], %(last)s::timestamptz[], %(n)s::int[])
     AS x(e, v, p, vis, pid, f, l, n)
ON CONFLICT (experience_id, visitor) DO UPDATE SET
    count = i.count + EXCLUDED.count,
    first_at = least(i.first_at, EXCLUDED.first_at),
    last_at = greatest(i.last_at, EXCLUDED.last_at),
    profile_id = coalesce(i.profile_id, EXCLUDED.profile_id)
RETURNING experience_id, visitor, (xmax = 0) AS inserted
"""  # noqa: S608 (the table name comes from the model)


def _upsert_impressions(account_id: int, rows: list[_Accepted]) -> set[tuple[int, str]]:
    """Insert or count the impressions; the (experience, visitor) pairs that were new."""
    if not rows:
        return set()
    with connection.cursor() as cursor:
        cursor.execute(_UPSERT_IMPRESSIONS, {
            "account": account_id, "exp": [r.experience_id for r in rows],
            "var": [r.variant_id for r in rows], "phase": [r.phase for r in rows],
            "vis": [r.visitor for r in rows], "pid": [r.profile_id for r in rows],
            "first": [r.first_at for r in rows], "last": [r.last_at for r in rows],
            "n": [len(r.positions) for r in rows]})
        return {(exp_id, visitor) for exp_id, visitor, inserted in cursor.fetchall() if inserted}


# --------------------------------------------------------------------------- conversions


def _goal_matchers(config_experiences: Iterable[ExperienceConfig], now: datetime
                   ) -> dict[str, list[tuple[ExperienceConfig, Any, Callable[[GoalEvent], bool]]]]:
    """Goals of running experiences by event name: (experience, goal, test of an event)."""
    ctx = CompileContext(schema=RuleSchema({}), now=now)
    found: dict[str, list[tuple[ExperienceConfig, Any, Callable[[GoalEvent], bool]]]] = {}
    for exp in config_experiences:
        if exp.status not in (Experience.Status.ACTIVE, Experience.Status.PAUSED):
            continue
        for goal in exp.goals:
            try:
                predicate = compile_predicate(
                    {"event": goal.event, "where": _conditions(goal.where)}, ctx)
            except RuleError:
                continue  # a goal whose conditions do not validate reaches nothing
            found.setdefault(goal.event, []).append((exp, goal, _event_test(predicate)))
    return found


def _event_test(predicate: Callable[[ProfileView], bool]) -> Callable[[GoalEvent], bool]:
    def test(event: GoalEvent) -> bool:
        view = ProfileView(field_values={}, events=[
            EventView(event=event.name, at=event.at, properties=event.properties)])
        return predicate(view)

    return test


def _conditions(where: Any) -> Any:
    """A goal's ``where`` as a rule's property conditions (``field`` taken for ``property``)."""
    found = _thaw(where) or []
    if isinstance(found, list):
        for cond in found:
            if isinstance(cond, dict) and "property" not in cond and "field" in cond:
                cond["property"] = cond.pop("field")
    return found


def _thaw(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _thaw(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_thaw(v) for v in value]
    return value


@dataclass
class _Reached:
    experience_id: int
    goal_id: int
    variant_id: int
    phase: int
    visitor: str
    first_at: datetime
    last_at: datetime
    count: int
    raw_event_id: int | None


def record_conversions(account_id: int, events: list[GoalEvent],
                       now: datetime | None = None) -> int:
    """Conversions among these events (see the module docstring); how many were counted."""
    if not events:
        return 0
    matchers = _goal_matchers(active_config(account_id).experiences, now or timezone.now())
    matches: list[tuple[GoalEvent, ExperienceConfig, Any]] = []
    for event in events:
        for exp, goal, test in matchers.get(event.name, ()):
            if (not goal.stream or goal.stream == event.stream) and test(event):
                matches.append((event, exp, goal))
    if not matches:
        return 0
    cookies = _profile_cookies(account_id, {e.profile_id for e, _, _ in matches})
    impressions = _impressions(account_id, matches, cookies)
    reached: dict[tuple[int, int, str], _Reached] = {}
    missing: list[tuple[GoalEvent, ExperienceConfig]] = []
    for event, exp, goal in matches:
        profile_cookies = cookies.get(event.profile_id, ()) if event.profile_id is not None else ()
        seen = _impression_for(impressions, exp.id, event, profile_cookies)
        if seen is None:
            missing.append((event, exp))
            continue
        if not seen.first_at <= event.at <= seen.first_at + CONVERSION_WINDOW:
            continue
        key = (exp.id, goal.id, seen.visitor)
        entry = reached.get(key)
        if entry is None:
            reached[key] = _Reached(exp.id, goal.id, seen.variant_id, seen.phase, seen.visitor,
                                    event.at, event.at, 1, event.raw_event_id)
        else:
            entry.count += 1
            entry.first_at = min(entry.first_at, event.at)
            entry.last_at = max(entry.last_at, event.at)
    _upsert_conversions(account_id, list(reached.values()))
    _warn_unseen(account_id, missing)
    return sum(entry.count for entry in reached.values())


def _profile_cookies(account_id: int, profiles: set[int | None]) -> dict[int, list[str]]:
    """The visitor keys (``_uid`` identifiers) of these profiles: an impression made under
    another cookie of the same person, or under a uid that merged into it, is theirs."""
    wanted = {p for p in profiles if p is not None}
    found: dict[int, list[str]] = {}
    if not wanted:
        return found
    uid_field = getattr(settings, "STRATA_VISITOR_IDENTIFIER_FIELD", "_uid")
    rows = Identifier.objects.filter(account_id=account_id, profile_id__in=wanted,
                                     field=uid_field, active=True)
    for profile_id, value in rows.values_list("profile_id", "value"):
        found.setdefault(profile_id, []).append(value)
    return found


def _impressions(account_id: int, matches: list[tuple[GoalEvent, ExperienceConfig, Any]],
                 cookies: Mapping[int, list[str]]) -> dict[tuple[int, Any], Impression]:
    experience_ids = {exp.id for _, exp, _ in matches}
    visitors = {v for event, _, _ in matches for v in event.visitors}
    visitors.update(v for values in cookies.values() for v in values)
    profiles = {event.profile_id for event, _, _ in matches if event.profile_id is not None}
    rows = Impression.objects.filter(account_id=account_id, experience_id__in=experience_ids)
    by_visitor = list(rows.filter(visitor__in=visitors)) if visitors else []
    by_profile = list(rows.filter(profile_id__in=profiles).order_by("-first_at")) \
        if profiles else []
    found: dict[tuple[int, Any], Impression] = {}
    for row in by_profile:  # the earliest wins: written last
        found[(row.experience_id, ("profile", row.profile_id))] = row
    for row in by_visitor:
        found[(row.experience_id, row.visitor)] = row
    return found


def _impression_for(impressions: Mapping[tuple[int, Any], Impression], experience_id: int,
                    event: GoalEvent, cookies: Iterable[str]) -> Impression | None:
    for visitor in (*event.visitors, *cookies):
        row = impressions.get((experience_id, visitor))
        if row is not None:
            return row
    if event.profile_id is not None:
        return impressions.get((experience_id, ("profile", event.profile_id)))
    return None


_UPSERT_CONVERSIONS = f"""
INSERT INTO {Conversion._meta.db_table} AS c
    (account_id, experience_id, goal_id, variant_id, phase, visitor, first_at, last_at, count,
     raw_event_id)
SELECT %(account)s, e, g, v, p, vis, f, l, n, r
FROM unnest(%(exp)s::bigint[], %(goal)s::bigint[], %(var)s::bigint[], %(phase)s::int[],
            %(vis)s::text[], %(first)s::timestamptz[], %(last)s::timestamptz[], %(n)s::int[],
            %(raw)s::bigint[]) AS x(e, g, v, p, vis, f, l, n, r)
ON CONFLICT (experience_id, goal_id, visitor) DO UPDATE SET
    count = c.count + EXCLUDED.count,
    first_at = least(c.first_at, EXCLUDED.first_at),
    last_at = greatest(c.last_at, EXCLUDED.last_at)
"""  # noqa: S608 (the table name comes from the model)


def _upsert_conversions(account_id: int, rows: list[_Reached]) -> None:
    if not rows:
        return
    with connection.cursor() as cursor:
        cursor.execute(_UPSERT_CONVERSIONS, {
            "account": account_id, "exp": [r.experience_id for r in rows],
            "goal": [r.goal_id for r in rows], "var": [r.variant_id for r in rows],
            "phase": [r.phase for r in rows], "vis": [r.visitor for r in rows],
            "first": [r.first_at for r in rows], "last": [r.last_at for r in rows],
            "n": [r.count for r in rows], "raw": [r.raw_event_id for r in rows]})


def _warn_unseen(account_id: int, missing: list[tuple[GoalEvent, ExperienceConfig]]) -> None:
    """Goal events from visitors who were assigned a variant but sent no impression."""
    if not missing:
        return
    visitors = {v for event, _ in missing for v in event.visitors}
    profiles = {event.profile_id for event, _ in missing if event.profile_id is not None}
    rows = Assignment.objects.filter(account_id=account_id,
                                     experience_id__in={exp.id for _, exp in missing})
    assigned: set[tuple[int, Any]] = set()
    if visitors:
        assigned |= {(e, v) for e, v in rows.filter(visitor__in=visitors)
                     .values_list("experience_id", "visitor")}
    if profiles:
        assigned |= {(e, ("profile", p)) for e, p in rows.filter(profile_id__in=profiles)
                     .values_list("experience_id", "profile_id")}
    samples: dict[int, list[dict[str, Any]]] = {}
    for event, exp in missing:
        keys = [*event.visitors, ("profile", event.profile_id)]
        if any((exp.id, key) in assigned for key in keys):
            samples.setdefault(exp.id, []).append({
                "visitor": (event.visitors or ("",))[0][:100], "event": event.name[:100],
                "at": event.at.isoformat()})
    _warn(account_id, WARN_CONVERSION, samples)


# --------------------------------------------------------------------------- warnings

_UPSERT_WARNINGS = f"""
INSERT INTO {DataQualityWarning._meta.db_table} AS w
    (account_id, experience_id, code, count, first_at, last_at, sample)
SELECT %(account)s, e, %(code)s, n, %(now)s, %(now)s, s::jsonb
FROM unnest(%(exp)s::bigint[], %(n)s::bigint[], %(sample)s::text[]) AS x(e, n, s)
ON CONFLICT (experience_id, code) DO UPDATE SET
    count = w.count + EXCLUDED.count, last_at = EXCLUDED.last_at, sample = EXCLUDED.sample
"""  # noqa: S608 (the table name comes from the model)


def _warn(account_id: int, code: str, by_experience: Mapping[int, list[dict[str, Any]]]) -> None:
    """Count ignored things per experience; the sample is the latest one."""
    if not by_experience:
        return

    ids = sorted(by_experience)
    with connection.cursor() as cursor:
        cursor.execute(_UPSERT_WARNINGS, {
            "account": account_id, "code": code, "now": timezone.now(), "exp": ids,
            "n": [len(by_experience[i]) for i in ids],
            "sample": [json.dumps(by_experience[i][-1]) for i in ids]})


# --------------------------------------------------------------------------- visitors


def follow_visitor(account_id: int, source: str, target: str) -> None:
    """A visitor key was replaced by another (a Personalize user uid merge): the source's
    assignments, impressions and conversions move to the target, except where the target
    already has its own for that experience (the target's stays; counts are added up)."""
    if not source or not target or source == target:
        return
    with connection.cursor() as cursor:
        for sql in _FOLLOW:
            cursor.execute(sql, {"account": account_id, "source": source, "target": target})


_T = {"assignment": Assignment._meta.db_table, "impression": Impression._meta.db_table,
      "conversion": Conversion._meta.db_table}
_ADD_UP = """UPDATE {table} t SET count = t.count + s.count,
        first_at = least(t.first_at, s.first_at), last_at = greatest(t.last_at, s.last_at)
    FROM {table} s
    WHERE s.account_id = %(account)s AND s.visitor = %(source)s
      AND t.account_id = %(account)s AND t.visitor = %(target)s
      AND t.experience_id = s.experience_id{same}"""
_DROP = """DELETE FROM {table} s USING {table} t
    WHERE s.account_id = %(account)s AND s.visitor = %(source)s
      AND t.account_id = %(account)s AND t.visitor = %(target)s
      AND t.experience_id = s.experience_id{same}"""
_MOVE = """UPDATE {table} SET visitor = %(target)s
    WHERE account_id = %(account)s AND visitor = %(source)s"""
_GOAL = " AND t.goal_id = s.goal_id"
# Counts of the source's rows are added to the target's rows of the same experience (and
# goal), those source rows dropped (an assignment the target has wins), the rest moved.
_FOLLOW = [
    _ADD_UP.format(table=_T["impression"], same=""),
    _ADD_UP.format(table=_T["conversion"], same=_GOAL),
    _DROP.format(table=_T["impression"], same=""),
    _DROP.format(table=_T["conversion"], same=_GOAL),
    _DROP.format(table=_T["assignment"], same=""),
    *[_MOVE.format(table=_T[name]) for name in ("assignment", "impression", "conversion")],
]


def _follow_merges(batch: Batch) -> None:
    """Profiles merged in this batch: assignments and impressions of the merged-away profiles
    now belong to the survivor (so later lookups by profile find them)."""
    if not batch.merged:
        return
    gone = list(batch.merged)
    survivors = [batch.merged[g] for g in gone]
    with connection.cursor() as cursor:
        for table in (_T["assignment"], _T["impression"]):
            cursor.execute(
                f"""UPDATE {table} t SET profile_id = m.survivor
                    FROM unnest(%s::bigint[], %s::bigint[]) AS m(gone, survivor)
                    WHERE t.account_id = %s AND t.profile_id = m.gone""",  # noqa: S608
                [gone, survivors, batch.account_id])


# --------------------------------------------------------------------------- the pipeline step


def _properties(message: Mapping[str, Any]) -> Mapping[str, Any]:
    """An event's properties: Segment's ``properties`` object, else the message itself (the
    Lytics tag's flat fields)."""
    props = message.get("properties")
    return props if isinstance(props, dict) else message


def _visitors(message: Mapping[str, Any]) -> tuple[str, ...]:
    found = []
    for key in ("anonymousId", "userId"):
        value = message.get(key)
        if isinstance(value, str | int) and not isinstance(value, bool) and str(value):
            found.append(str(value))
    return tuple(dict.fromkeys(found))


def _first(props: Mapping[str, Any], names: tuple[str, ...]) -> str:
    for name in names:
        value = props.get(name)
        if isinstance(value, str | int) and not isinstance(value, bool) and str(value):
            return str(value)
    return ""


def _impression_of(ev: PipelineEvent) -> ImpressionIn | None:
    if ev.event not in IMPRESSION_EVENTS:
        return None
    props = _properties(ev.message)
    visitors = _visitors(ev.message)
    experience = _first(props, EXPERIENCE_PROPERTIES)
    variant = _first(props, VARIANT_PROPERTIES)
    if not (visitors and experience and variant):
        return None
    return ImpressionIn(experience, variant, visitors[0], ev.at, ev.profile_id)


_REPLAYED = f"""SELECT coalesce(max(last_raw_event_id), 0) FROM {ProfileRebuild._meta.db_table}
    WHERE account_id = %s"""  # noqa: S608 (the table name comes from the model)


def _replayed_upto(account_id: int) -> int:
    """Raw events up to this id were queued again by a profile rebuild: their impressions and
    conversions were counted the first time round."""
    with connection.cursor() as cursor:
        cursor.execute(_REPLAYED, [account_id])
        return int(cursor.fetchone()[0])


def record(batch: Batch) -> None:
    """Pipeline step: impressions sent as events, then conversions (module docstring)."""
    _follow_merges(batch)
    events = batch.live
    if not events:
        return
    upto = _replayed_upto(batch.account_id)
    events = [ev for ev in events if ev.raw_event_id > upto]
    impressions = [imp for ev in events if (imp := _impression_of(ev)) is not None]
    if impressions:
        record_impressions(batch.account_id, impressions)
    record_conversions(batch.account_id, [
        GoalEvent(name=ev.event or ev.type, properties=_properties(ev.message),
                  stream=ev.stream, at=ev.at, visitors=_visitors(ev.message),
                  profile_id=ev.profile_id, raw_event_id=ev.raw_event_id)
        for ev in events if ev.event not in IMPRESSION_EVENTS], batch.now)
