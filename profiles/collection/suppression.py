"""The suppression check of collection (issue #14): an event carrying a suppressed identifier
is not stored; it is counted per stream and day (``SuppressedCount``) and its sender gets the
same answer as for any accepted event, so the list cannot be probed.

The list holds hashes (``profiles.identifiers.identifier_hash``) and each one's 24-bit bucket
(``identifier_bucket``, a checksum far too coarse to name anyone); a value is hashed only when
its bucket is listed, so a long list costs a checksum per candidate value, not an HMAC. Each
process keeps the account's hashes and identifier field names for
``STRATA_SUPPRESSION_CACHE_SECONDS`` (a suppression reaches every process within that time;
the request that adds one clears this process's copy at once). An account with an empty list
costs one dictionary lookup per request.

Which values are checked: ``userId``, ``anonymousId``, and string values whose key is one of
the account's identifier fields or ``email``/``phone``: in ``traits`` and ``context.traits`` of
a Segment-spec message, at the top of a flat record (JSON, the tag; also as the last part of a
dotted key, ``origin.email``). That is where identifiers arrive, and few enough values that the
check stays cheap; an identifier sent anywhere else (a track event's ``properties``) is not
checked here, and a delete still removes what it brought.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any
from zlib import crc32

from django.conf import settings
from django.db import connection

from profiles.identifiers import (
    BUCKET_MASK,
    HASH_MAX_INPUT,
    bucket_seed,
    identifier_hash,
    normalize_identifier,
)
from profiles.models import Field, Suppression

if TYPE_CHECKING:
    from cdp_site.models import Account
    from profiles.collection.messages import IncomingEvent

__all__ = ["count_suppressed", "drop_suppressed", "forget_cached", "suppressed_hashes"]

ALWAYS_CHECKED = frozenset({"email", "phone"})


@dataclass(frozen=True)
class _Entry:
    expires: float
    hashes: frozenset[str]
    buckets: frozenset[int]
    keys: tuple[str, ...]
    lowered: frozenset[str]
    seed: int  # identifier_bucket's running checksum after the account's prefix


_cache: dict[int, _Entry] = {}


def forget_cached(account_id: int) -> None:
    _cache.pop(account_id, None)


def _entry(account_id: int) -> _Entry:
    now = time.monotonic()
    entry = _cache.get(account_id)
    if entry is not None and entry.expires > now:
        return entry
    rows = list(Suppression.objects.filter(account_id=account_id)
                .values_list("value_hash", "bucket"))
    keys: set[str] = set()
    if rows:
        names = Field.objects.filter(account_id=account_id, is_identifier=True) \
            .values_list("name", flat=True)
        keys = set(ALWAYS_CHECKED) | set(names)
    entry = _Entry(now + settings.STRATA_SUPPRESSION_CACHE_SECONDS,
                   frozenset(h for h, _b in rows), frozenset(b for _h, b in rows),
                   tuple(sorted(keys)), frozenset(k.lower() for k in keys),
                   bucket_seed(account_id))
    _cache[account_id] = entry
    return entry


def suppressed_hashes(account_id: int) -> frozenset[str]:
    return _entry(account_id).hashes


def _candidates(event: IncomingEvent, entry: _Entry) -> list[str]:
    found = [event.user_id, event.anonymous_id]
    message = event.message
    if "type" in message:  # a Segment-spec message: traits carry identifiers
        parts: list[Any] = [message.get("traits")]
        context = message.get("context")
        if type(context) is dict:
            parts.append(context.get("traits"))
    else:  # a flat record (JSON, the tag): keys may be dotted (``origin.email``)
        lowered = entry.lowered
        found += [value for key, value in message.items() if type(value) is str
                  and key.rpartition(".")[2].lower() in lowered]
        parts = [message.get("traits")]
    for part in parts:
        if part and type(part) is dict:
            found += [value for key in entry.keys if type(value := part.get(key)) is str]
    return found


def _is_suppressed(account_id: int, event: IncomingEvent, entry: _Entry) -> bool:
    buckets, seed = entry.buckets, entry.seed
    for value in _candidates(event, entry):
        # normalize_identifier, with its common cases inline (this runs for every event)
        text = value[:HASH_MAX_INPUT].strip()
        if "@" in text:
            text = text.lower()
        elif text[:1] == "+":
            text = normalize_identifier(text)
        # the cheap bucket first: only a value whose bucket is listed is hashed
        if crc32(text.encode(), seed) & BUCKET_MASK in buckets \
                and identifier_hash(account_id, text) in entry.hashes:
            return True
    return False


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
