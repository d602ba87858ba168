"""The suppression check of collection (issue #14): an event carrying a suppressed identifier
is not stored; it is counted per stream and day (``SuppressedCount``) and its sender gets the
same answer as for any accepted event, so the list cannot be probed.

The list holds hashes (``profiles.identifiers.identifier_hash``); each process keeps the
account's hashes and identifier field names for ``STRATA_SUPPRESSION_CACHE_SECONDS`` (a
suppression reaches every process within that time; the request that adds one clears this
process's copy at once). An account with an empty list costs one dictionary lookup per request.

Which values are checked: ``userId``, ``anonymousId``, and string values whose key is one of
the account's identifier fields or ``email``/``phone``/``userId``/``anonymousId``, at the top
of the message (also as the last part of a dotted key, ``origin.email``) and in ``traits``,
``context.traits`` and ``properties``: where identifiers arrive, and few enough values that the
check stays cheap.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import connection

from profiles.identifiers import identifier_hash
from profiles.models import Field, Suppression

if TYPE_CHECKING:
    from cdp_site.models import Account
    from profiles.collection.messages import IncomingEvent

__all__ = ["count_suppressed", "drop_suppressed", "forget_cached", "suppressed_hashes"]

ALWAYS_CHECKED = frozenset({"email", "phone", "userid", "user_id", "anonymousid"})
_NESTED = ("traits", "properties")


@dataclass(frozen=True)
class _Entry:
    expires: float
    hashes: frozenset[str]
    keys: frozenset[str]


_cache: dict[int, _Entry] = {}


def forget_cached(account_id: int) -> None:
    _cache.pop(account_id, None)


def _entry(account_id: int) -> _Entry:
    now = time.monotonic()
    entry = _cache.get(account_id)
    if entry is not None and entry.expires > now:
        return entry
    hashes = frozenset(Suppression.objects.filter(account_id=account_id)
                       .values_list("value_hash", flat=True))
    keys: frozenset[str] = frozenset()
    if hashes:
        names = Field.objects.filter(account_id=account_id, is_identifier=True) \
            .values_list("name", flat=True)
        keys = ALWAYS_CHECKED | {name.lower() for name in names}
    entry = _Entry(now + settings.STRATA_SUPPRESSION_CACHE_SECONDS, hashes, keys)
    _cache[account_id] = entry
    return entry


def suppressed_hashes(account_id: int) -> frozenset[str]:
    return _entry(account_id).hashes


def _candidates(event: IncomingEvent, keys: frozenset[str]) -> list[str]:
    found = [event.user_id, event.anonymous_id]
    message = event.message
    for key, value in message.items():
        if isinstance(value, str) and key.rpartition(".")[2].lower() in keys:
            found.append(value)
    inner: list[Any] = [message.get(name) for name in _NESTED]
    context = message.get("context")
    if isinstance(context, dict):
        inner.append(context.get("traits"))
    for part in inner:
        if isinstance(part, dict):
            for key, value in part.items():
                if isinstance(value, str) and key.lower() in keys:
                    found.append(value)
    return [value for value in found if value]


def _is_suppressed(account_id: int, event: IncomingEvent, entry: _Entry) -> bool:
    hashes = entry.hashes
    return any(identifier_hash(account_id, value) in hashes
               for value in _candidates(event, entry.keys))


def drop_suppressed(account: Account, events: list[IncomingEvent]
                    ) -> tuple[list[IncomingEvent], int]:
    """The events to store and how many were dropped for a suppressed identifier."""
    entry = _entry(account.pk)
    if not entry.hashes or not events:
        return events, 0
    kept = [event for event in events if not _is_suppressed(account.pk, event, entry)]
    return kept, len(events) - len(kept)


_COUNT = """
INSERT INTO profiles_suppressedcount (account_id, stream, day, events)
VALUES (%s, %s, %s, %s)
ON CONFLICT (account_id, stream, day) DO UPDATE
SET events = profiles_suppressedcount.events + EXCLUDED.events
"""


def count_suppressed(account: Account, stream: str, day: date, n: int) -> None:
    if n:
        with connection.cursor() as cursor:
            cursor.execute(_COUNT, [account.pk, stream, day, n])
