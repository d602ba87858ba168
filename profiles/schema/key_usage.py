"""Which raw keys the live schema reads: ``RawKey.times_used_by_mappings``, recomputed for the
whole account when a schema version is published (and so on revert, which publishes), in one
set-based UPDATE. The stream explorer's "used / unused" filter reads it.

A *use* is one mapping (its expression and its guard together), or one active route rule,
of the key's stream (a route rule's input stream). A key counts a use when the use's expression
reads a path (``Expression.fields_read``) that names the key. Raw keys are the explorer's
flattened paths (``profiles.explorer.aggregate.flatten``: objects joined with dots, an array one key
``name[]``), and expressions see the message as received, so path ``p`` names:

- the key ``p`` itself, and ``p[]`` when the value is an array
  (``response.preferred_activities`` -> ``response.preferred_activities[]``);
- every key under it when the expression reads a whole object (``response`` ->
  ``response.loyalty_tier``);
- the same under ``properties.``, ``traits.`` and ``context.``, where Segment messages keep
  what a Lytics-style flat path names (``taxonomy`` -> ``properties.taxonomy``; mappings
  usually say so with ``oneof(taxonomy, properties.taxonomy)``);
- for a path with an index (``items[0].sku``), the array's key (``items[]``).

Keys first seen after the publish are counted against the live version as the aggregator
inserts them (``recompute_live_key_usage``), so a fresh demo's keys do not read "0 uses"
until the next publish.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from django.db import connection

from profiles.schema.expressions import ExpressionError, compile_expression

if TYPE_CHECKING:
    from cdp_site.models import Account

SEGMENT_SCOPES = ("", "properties.", "traits.", "context.")


def _names(path: str) -> tuple[set[str], set[str]]:
    """The exact keys and the key prefixes a path names (the module docstring)."""
    exact: set[str] = set()
    prefixes: set[str] = set()
    for scope in SEGMENT_SCOPES:
        full = scope + path
        if "[" in full:
            exact.add(full.split("[", 1)[0] + "[]")
            continue
        exact.update((full, full + "[]"))
        prefixes.add(full + ".")
    return exact, prefixes


def _paths(*texts: str) -> set[str]:
    read: set[str] = set()
    for text in texts:
        if not text:
            continue
        try:
            read |= compile_expression(text).fields_read
        except ExpressionError:  # published versions are valid; an old one may not compile
            continue
    return read


def uses(snapshot: dict[str, Any]) -> list[tuple[str, set[str]]]:
    """(stream, paths read) for each mapping and each active route rule of a snapshot."""
    found = [(m["stream"], _paths(m.get("expression", ""), m.get("guard", "")))
             for m in snapshot.get("mappings", [])]
    found += [(r["input_stream"], _paths(r.get("expression", "")))
              for r in snapshot.get("route_rules", []) if r.get("active", True)]
    return found


def recompute_live_key_usage(account_ids: Iterable[int]) -> int:
    """``recompute_key_usage`` against each account's live version (accounts that never
    published keep 0): the aggregator calls it when it inserts new keys."""
    # SQL, not the model: the aggregator's worker processes import this module before Django
    # has loaded its apps.
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT DISTINCT ON (account_id) account_id, snapshot FROM profiles_schemaversion
            WHERE account_id = ANY(%s) ORDER BY account_id, number DESC
            """,
            [sorted(set(account_ids))],
        )
        live = cursor.fetchall()
    return sum(_recompute(account_id, snapshot if isinstance(snapshot, dict)
                          else json.loads(snapshot)) for account_id, snapshot in live)


def recompute_key_usage(account: Account, snapshot: dict[str, Any]) -> int:
    """Set every raw key's ``times_used_by_mappings`` of the account from the snapshot (the
    live version); returns how many rows changed."""
    return _recompute(account.pk, snapshot)


def _recompute(account_id: int, snapshot: dict[str, Any]) -> int:
    streams: list[str] = []
    matches: list[str] = []
    is_prefix: list[bool] = []
    use_ids: list[int] = []
    for use_id, (stream, paths) in enumerate(uses(snapshot)):
        for path in paths:
            exact, prefixes = _names(path)
            for key in exact | prefixes:
                streams.append(stream)
                matches.append(key)
                is_prefix.append(key in prefixes)
                use_ids.append(use_id)
    with connection.cursor() as cursor:
        cursor.execute(
            """
            UPDATE profiles_rawkey AS rk SET times_used_by_mappings = counted.n
            FROM (
                SELECT k.id, count(DISTINCT u.use_id) AS n
                FROM profiles_rawkey AS k
                LEFT JOIN unnest(%s::text[], %s::text[], %s::boolean[], %s::int[])
                    AS u(stream, match, is_prefix, use_id)
                  ON u.stream = k.stream
                 AND (CASE WHEN u.is_prefix THEN starts_with(k.key, u.match)
                           ELSE k.key = u.match END)
                WHERE k.account_id = %s
                GROUP BY k.id
            ) AS counted
            WHERE rk.id = counted.id AND rk.times_used_by_mappings <> counted.n
            """,
            [streams, matches, is_prefix, use_ids, account_id],
        )
        return cursor.rowcount
