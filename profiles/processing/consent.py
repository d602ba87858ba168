"""Consent per profile and purpose (DESIGN.md: enforced where data leaves).

A message carries its visitor's choices as Segment does, in
``context.consent.categoryPreferences`` (``{"analytics": true, "ads": false}``: what
static/strata/strata.js sends once ``consent()`` was called). The pipeline step ``record``
keeps one ``ProfileConsent`` row per profile and purpose: the choice of the *latest* event
that carried that purpose, by the event's own time (then its raw id), so an older event that
arrives late does not overwrite a newer choice. When profiles merge, the survivor gets the
union of their purposes, the newest choice winning for a purpose both have.

An account that lists its purposes (``ConsentPurpose``, issue #14) keeps choices for those
only: a choice for any other purpose is counted per purpose and day (``UnknownPurposeCount``)
and dropped, so a typo in a site's tag does not become a purpose. An account that lists none
keeps every purpose as sent.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.db import connection

from profiles.models import ConsentPurpose, ProfileConsent

if TYPE_CHECKING:
    from profiles.processing.batch import Batch

__all__ = ["granted_purposes", "preferences", "profile_consents", "record"]

PURPOSE_MAX = 100
MAX_PURPOSES = 50  # purposes read from one message


def preferences(message: Mapping[str, Any]) -> dict[str, bool]:
    """The ``{purpose: granted}`` of a message (empty when it carries none). Purposes are
    kept as sent (trimmed); values that are not true or false are ignored."""
    context = message.get("context")
    consent = context.get("consent") if isinstance(context, dict) else None
    prefs = consent.get("categoryPreferences") if isinstance(consent, dict) else None
    if not isinstance(prefs, dict):
        return {}
    out: dict[str, bool] = {}
    for purpose, granted in list(prefs.items())[:MAX_PURPOSES]:
        name = str(purpose).strip()[:PURPOSE_MAX]
        if name and isinstance(granted, bool):
            out[name] = granted
    return out


# The old rows are read by the first CTE from the statement's snapshot, so the answer names
# only the purposes whose choice changed (or that are new). Rows where an existing choice is
# newer (by time, then raw id) are left as they are.
_UPSERT = """
WITH incoming AS (
    SELECT * FROM json_to_recordset(%(rows)s::json)
        AS u(p bigint, purpose text, g boolean, at timestamptz, r bigint)
), old AS (
    SELECT c.profile_id, c.purpose, c.granted FROM profiles_profileconsent c
    JOIN incoming i ON c.profile_id = i.p AND c.purpose = i.purpose
), written AS (
    INSERT INTO profiles_profileconsent (account_id, profile_id, purpose, granted, at,
        raw_event_id)
    SELECT %(account)s, p, purpose, g, at, r FROM incoming
    ON CONFLICT (profile_id, purpose) DO UPDATE SET granted = EXCLUDED.granted,
        at = EXCLUDED.at, raw_event_id = EXCLUDED.raw_event_id
    WHERE (profiles_profileconsent.at, coalesce(profiles_profileconsent.raw_event_id, 0))
        <= (EXCLUDED.at, coalesce(EXCLUDED.raw_event_id, 0))
    RETURNING profile_id, purpose, granted
)
SELECT w.profile_id, w.purpose FROM written w
LEFT JOIN old o ON o.profile_id = w.profile_id AND o.purpose = w.purpose
WHERE o.granted IS DISTINCT FROM w.granted
"""
# Merged-away profiles' rows: deleted, and offered to their survivors (the newest per
# survivor and purpose) through the same upsert.
_TAKE_MERGED = """
DELETE FROM profiles_profileconsent c
USING unnest(%(gone)s::bigint[], %(keep)s::bigint[]) AS m(gone, keep)
WHERE c.profile_id = m.gone AND c.account_id + 0 = %(account)s
RETURNING m.keep, c.purpose, c.granted, c.at, c.raw_event_id
"""


def _newest(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (profile, purpose): the newest (an upsert may touch a row once)."""
    best: dict[tuple[int, str], dict[str, Any]] = {}
    for row in rows:
        key = (row["p"], row["purpose"])
        have = best.get(key)
        if have is None or (row["at"], row["r"] or 0) >= (have["at"], have["r"] or 0):
            best[key] = row
    return list(best.values())


def _encode(rows: list[dict[str, Any]]) -> str:
    return json.dumps(rows, default=lambda v: v.isoformat() if isinstance(v, datetime)
                      else str(v), separators=(",", ":"))


_COUNT_UNKNOWN = """
INSERT INTO profiles_unknownpurposecount (account_id, purpose, day, events)
SELECT %(account)s, purpose, day, n
FROM json_to_recordset(%(rows)s::json) AS u(purpose text, day date, n bigint)
ON CONFLICT (account_id, purpose, day) DO UPDATE
SET events = profiles_unknownpurposecount.events + EXCLUDED.events
"""


def _count_unknown(account_id: int, counts: dict[tuple[str, Any], int]) -> None:
    rows = [{"purpose": purpose, "day": day.isoformat(), "n": n}
            for (purpose, day), n in sorted(counts.items())]
    with connection.cursor() as cursor:
        cursor.execute(_COUNT_UNKNOWN, {"account": account_id, "rows": json.dumps(rows)})


def record(batch: Batch) -> None:
    """Pipeline step: upsert the consent choices of the batch's events (and move those of
    merged-away profiles to their survivors). Sets ``batch.changed_consents`` = {profile
    id: purposes whose choice changed}."""
    rows: list[dict[str, Any]] = []
    declared: set[str] | None = None
    unknown: dict[tuple[str, Any], int] = {}
    for ev in batch.live:
        if ev.profile_id is None:
            continue
        for purpose, granted in preferences(ev.message).items():
            if declared is None:
                declared = set(ConsentPurpose.objects.filter(account_id=batch.account_id)
                               .values_list("name", flat=True))
            if declared and purpose not in declared:
                key = (purpose, ev.at.date())
                unknown[key] = unknown.get(key, 0) + 1
                continue
            rows.append({"p": ev.profile_id, "purpose": purpose, "g": granted, "at": ev.at,
                         "r": ev.raw_event_id})
    if unknown:
        _count_unknown(batch.account_id, unknown)
    merged = batch.merged
    if not rows and not merged:
        return
    changed: dict[int, set[str]] = {}
    with connection.cursor() as cursor:
        if merged:
            gone = list(merged)
            cursor.execute(_TAKE_MERGED, {"gone": gone, "keep": [merged[g] for g in gone],
                                          "account": batch.account_id})
            rows += [{"p": keep, "purpose": purpose, "g": granted, "at": at, "r": raw}
                     for keep, purpose, granted, at, raw in cursor.fetchall()]
        if rows:
            cursor.execute(_UPSERT, {"rows": _encode(_newest(rows)),
                                     "account": batch.account_id})
            for pid, purpose in cursor.fetchall():
                changed.setdefault(pid, set()).add(purpose)
    batch.changed_consents = changed


def profile_consents(account_id: int, profile_id: int) -> list[ProfileConsent]:
    """The profile's choices, by purpose."""
    return list(ProfileConsent.objects.filter(account_id=account_id, profile_id=profile_id)
                .order_by("purpose"))


def granted_purposes(account_id: int, profile_id: int) -> set[str]:
    """The purposes the profile granted."""
    return set(ProfileConsent.objects.filter(account_id=account_id, profile_id=profile_id,
                                             granted=True).values_list("purpose", flat=True))
