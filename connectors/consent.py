"""Consent where data leaves (DESIGN.md): exports send only profiles consented for every one
of the job's purposes. Kept in this one function so the privacy work (suppression lists,
consent hooks) can be wired in here alone."""

from __future__ import annotations

from collections.abc import Iterable

from django.db import connection

# Profiles (of a list given as one array) that granted every purpose asked for.
_CONSENTED = """SELECT profile_id FROM profiles_profileconsent
WHERE account_id = %(account)s AND profile_id = ANY(%(ids)s::bigint[])
  AND purpose = ANY(%(purposes)s::text[]) AND granted
GROUP BY profile_id HAVING count(DISTINCT purpose) = %(n)s"""


def consented(account_id: int, profile_ids: Iterable[int], purposes: list[str]) -> set[int]:
    """The profiles among ``profile_ids`` that granted every purpose (all, when none)."""
    ids = set(profile_ids)
    if not purposes or not ids:
        return ids
    with connection.cursor() as cur:
        cur.execute(_CONSENTED, {"account": account_id, "ids": list(ids),
                                 "purposes": list(purposes), "n": len(set(purposes))})
        return {row[0] for row in cur.fetchall()}
