"""The collection core every intake path shares: quota, tracking plans, and storing.

Paths (Segment-spec API, Lytics tag, JSON, bulk, strata.js) turn what they receive into
``IncomingEvent``s and ``Failure``s, then call ``store_events`` and ``record_failures``. An
accepted event is in PostgreSQL before the path answers 2xx; a refused one is a FailedEvent.
"""

from __future__ import annotations

import json
import math
import re
import struct
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import orjson
import psycopg
from django.db import connection
from django.utils import timezone
from psycopg.adapt import Dumper
from psycopg.pq import Format

from cdp_site.db import live_connection
from profiles.collection.messages import (
    MAX_JSON_DEPTH,
    MAX_MESSAGE_BYTES,
    MESSAGE_ID_MAX,
    Failure,
    IncomingEvent,
    QuotaExceeded,
    json_depth_exceeds,
    new_message_id,
)
from profiles.collection.plans import apply_plans
from profiles.collection.suppression import count_suppressed, drop_suppressed
from profiles.collection.usage import notify_quota_reached, quota_exceeded
from profiles.models import FailedEvent, Stream

if TYPE_CHECKING:
    from collections.abc import Iterable

    from cdp_site.models import Account

# One encoder for every message: json.dumps with options builds a new one per call.
_MESSAGE_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, default=str,
                                    allow_nan=False)
# orjson writes the same compact UTF-8 JSON about ten times faster (a tenth of a millisecond
# less per message). It refuses what it cannot write as the standard encoder does (lone
# surrogates, integers beyond 64 bits, keys that are not strings, 255+ levels), and those
# messages take the standard path; datetimes and dataclasses go through ``default=str`` as
# they do there. Numbers may be spelled differently (1e-7, not 1e-07), which jsonb stores alike.
_ORJSON_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
_NUL_ESCAPE = re.compile(r"(?<!\\)((?:\\\\)*)\\u0000")
_SURROGATE = re.compile("[\ud800-\udfff]")


def _has_nonfinite(value: Any) -> bool:
    """True when a float in the value is NaN or infinite (checked without recursion)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, float) and not math.isfinite(item):
            return True
    return False


def encode_message(
    message: dict[str, Any], warnings: list[dict[str, Any]]
) -> tuple[str, str] | tuple[None, str]:
    """Serialize a message for the raw store and check it: ``(json, "")``, or ``(None, code)``
    with ``message_too_large`` (over 32 KB of UTF-8) or ``too_deep`` (containers nested over
    32 levels). Characters PostgreSQL's jsonb refuses (NUL, lone surrogates) become U+FFFD,
    with a warning, instead of failing the whole request's INSERT."""
    try:
        data = orjson.dumps(message, default=str, option=_ORJSON_OPTIONS)
    except orjson.JSONEncodeError:
        return _encode_standard(message, warnings)
    if b"null" in data and _has_nonfinite(message):
        # orjson writes NaN and Infinity as null; the standard encoder refuses them.
        return _encode_standard(message, warnings)
    return _checked(data.decode(), len(data), message, warnings)


def _encode_standard(
    message: dict[str, Any], warnings: list[dict[str, Any]]
) -> tuple[str, str] | tuple[None, str]:
    try:
        encoded = _MESSAGE_ENCODER.encode(message)
    except RecursionError:
        return None, "too_deep"
    try:
        size = len(encoded.encode("utf-8"))
    except UnicodeEncodeError:
        encoded = _SURROGATE.sub("\ufffd", encoded)
        size = len(encoded.encode("utf-8"))
        warnings.append({"code": "invalid_unicode",
                         "message": "lone UTF-16 surrogates were replaced by U+FFFD"})
    return _checked(encoded, size, message, warnings)


def _checked(
    encoded: str, size: int, message: dict[str, Any], warnings: list[dict[str, Any]]
) -> tuple[str, str] | tuple[None, str]:
    if "\\u0000" in encoded:
        encoded = _NUL_ESCAPE.sub(lambda m: m.group(1) + "\\ufffd", encoded)
        warnings.append({"code": "nul_character",
                         "message": "NUL characters were replaced by U+FFFD"})
    if size > MAX_MESSAGE_BYTES:
        return None, "message_too_large"
    # A message cannot nest deeper than it has brackets: walk it only when it might.
    if (encoded.count("{") + encoded.count("[") > MAX_JSON_DEPTH
            and json_depth_exceeds(message)):
        return None, "too_deep"
    return encoded, ""


_known_streams: set[tuple[int, str]] = set()


def ensure_stream(account: Account, name: str) -> None:
    """Streams are created on first use; known ones are remembered in this process."""
    key = (account.pk, name)
    if key in _known_streams:
        return
    Stream.objects.bulk_create(
        [Stream(account=account, name=name)], ignore_conflicts=True
    )
    _known_streams.add(key)


_DEDUPE_INSERT = """
WITH incoming AS (
    {incoming}
), fresh AS (
    INSERT INTO profiles_messageid AS seen (account_id, message_id, seen_at)
    SELECT %(account)s::bigint, m, %(received)s::timestamptz FROM incoming
    ON CONFLICT (account_id, message_id) DO UPDATE SET seen_at = EXCLUDED.seen_at
        WHERE seen.seen_at < EXCLUDED.seen_at - interval '7 days'
    RETURNING message_id
), stored AS (
    INSERT INTO profiles_rawevent (account_id, stream, message_id, type, event, user_id,
        anonymous_id, received_at, sent_at, event_at, source, write_key_id, message, warnings)
    SELECT %(account)s::bigint, %(stream)s::text, i.m, i.t, i.e, i.u, i.a,
        %(received)s::timestamptz, i.sa, i.ea, %(source)s::text, %(key)s::bigint, i.j::jsonb,
        i.w::jsonb
    FROM incoming i JOIN fresh f ON f.message_id = i.m{order_by}
    RETURNING id
)
INSERT INTO profiles_pendingevent (raw_event_id, account_id, received_at)
SELECT id, %(account)s::bigint, %(received)s::timestamptz FROM stored
"""


def dedupe_insert_sql(incoming: str, order_by: str = "") -> str:
    """The one statement that stores events under the message-id rule: the same account and
    message id within 7 days is stored once. ``incoming`` is a SELECT yielding one row per
    message id with columns m (message id), t, e, u, a, sa, ea, j (JSON text), w (warnings
    JSON text or NULL); ``order_by`` (e.g. ``i.n``) fixes the order ids are given in.
    Parameters: account, stream, received, source, key. Every path stores through this.

    The same statement queues each stored event for processing (``PendingEvent``), so an
    event is never stored without being queued; its row count is the number of new events."""
    order = f" ORDER BY {order_by}" if order_by else ""
    return _DEDUPE_INSERT.replace("{incoming}", incoming).replace("{order_by}", order)


class _TextArray(list[str | None]):
    """A list bound as text[] by _TextArrayDumper."""


_ARRAY_HEAD = struct.Struct("!iiIii")  # dimensions, has nulls, element type, length, lower bound
_ITEM_LENGTH = struct.Struct("!i").pack
_TEXT_OID = 25
_TEXT_ARRAY_OID = 1009


class _TextArrayDumper(Dumper):
    """text[] in PostgreSQL's binary array format, as psycopg's list dumper writes it, in list
    comprehensions instead of its per-item loop (a third of its time for the batch's seven
    text arrays). Connections are UTF-8 (Django sets client_encoding)."""

    format = Format.BINARY
    oid = _TEXT_ARRAY_OID

    def dump(self, obj: list[str | None]) -> bytes:
        if not obj:
            return struct.pack("!iiI", 0, 0, _TEXT_OID)
        has_null = None in obj
        if has_null:
            items = [_ITEM_LENGTH(-1) if text is None else
                     _ITEM_LENGTH(len(data := text.encode())) + data for text in obj]
        else:
            encoded = [text.encode() for text in obj]  # type: ignore[union-attr]
            items = [b""] * (2 * len(encoded))
            items[0::2] = [_ITEM_LENGTH(len(data)) for data in encoded]
            items[1::2] = encoded
        return _ARRAY_HEAD.pack(1, has_null, _TEXT_OID, len(obj), 1) + b"".join(items)


# Rows keep the order the request gave them (n), so ids follow a batch's order: an identify
# stored before the track that follows it is processed first. store_events passes each
# message id once (a repeat within a request is dropped in Python, the first one kept), so
# no DISTINCT ON sort is needed here.
_INSERT = dedupe_insert_sql("""SELECT m, t, e, u, a, sa, ea, j, w, n
    FROM unnest(%(mid)b::text[], %(typ)b::text[], %(evt)b::text[], %(uid)b::text[],
                %(anon)b::text[], %(sent)b::timestamptz[], %(evat)b::timestamptz[],
                %(msg)b::text[], %(warn)b::text[])
         WITH ORDINALITY AS x(m, t, e, u, a, sa, ea, j, w, n)""", order_by="i.n")
# One event (every single-message request): scalar parameters, which psycopg dumps in C, where
# each array costs it a Python loop.
_INSERT_ONE = dedupe_insert_sql("""SELECT %(mid)b::text AS m, %(typ)b::text AS t,
    %(evt)b::text AS e, %(uid)b::text AS u, %(anon)b::text AS a, %(sent)b::timestamptz AS sa,
    %(evat)b::timestamptz AS ea, %(msg)b::text AS j, %(warn)b::text AS w""")


def _clip(value: Any, limit: int) -> str:
    # PostgreSQL text cannot hold NUL: one in a client's id must not fail the whole INSERT.
    return "" if value is None else str(value)[:limit].replace("\x00", "\ufffd")


# The cursor is kept on Django's connection wrapper, which does not declare it.
_CURSOR_ATTR = "_strata_store_cursor"


def _store_cursor() -> psycopg.Cursor[Any]:
    """A plain psycopg cursor on this thread's connection, kept with it: Django's cursors bind
    client-side, quoting every array element in Python, where this one binds server-side and
    sends arrays in binary; and a cursor run again with the same statement keeps its adapters."""
    raw = live_connection()  # a connection the server ended is replaced, not used
    cursor = getattr(connection, _CURSOR_ATTR, None)
    if cursor is None or cursor.connection is not raw or cursor.closed:
        cursor = psycopg.Cursor(raw)
        cursor.adapters.register_dumper(_TextArray, _TextArrayDumper)
        setattr(connection, _CURSOR_ATTR, cursor)
    return cursor


def store_events(
    account: Account,
    stream: str,
    events: Iterable[IncomingEvent],
    *,
    source: str,
    received_at: datetime,
    write_key_id: int | None = None,
) -> int:
    """Store accepted events durably in one statement; a message id the account sent in the
    last 7 days is stored once. Returns how many rows were new."""
    events = list(events)
    if not events:
        return 0
    ensure_stream(account, stream)
    mids: list[str] = []
    typs: list[str] = []
    evts: list[str] = []
    uids: list[str] = []
    anons: list[str] = []
    sents: list[datetime | None] = []
    evats: list[datetime] = []
    msgs: list[str] = []
    warns: list[str | None] = []
    seen: set[str] = set()
    for item in events:
        mid = _clip(item.message_id or new_message_id(), MESSAGE_ID_MAX)
        if mid in seen:
            continue  # the same id twice in one request: the first one is stored
        seen.add(mid)
        mids.append(mid)
        typs.append(_clip(item.type, 32))
        evts.append(_clip(item.event, 200))
        uids.append(_clip(item.user_id, 300))
        anons.append(_clip(item.anonymous_id, 300))
        sents.append(item.sent_at)
        evats.append(item.event_at or received_at)
        msgs.append(item.encoded if item.encoded is not None else
                    json.dumps(item.message, separators=(",", ":"), default=str))
        warns.append(json.dumps(item.warnings) if item.warnings else None)
    params: dict[str, Any] = {
        "account": account.pk, "stream": stream, "received": received_at, "source": source,
        "key": write_key_id}
    if len(mids) == 1:
        statement = _INSERT_ONE
        params.update(mid=mids[0], typ=typs[0], evt=evts[0], uid=uids[0], anon=anons[0],
                      sent=sents[0], evat=evats[0], msg=msgs[0], warn=warns[0])
    else:
        statement = _INSERT
        params.update(mid=_TextArray(mids), typ=_TextArray(typs), evt=_TextArray(evts),
                      uid=_TextArray(uids), anon=_TextArray(anons), sent=sents, evat=evats,
                      msg=_TextArray(msgs), warn=_TextArray(warns))
    # One statement is atomic on its own: no BEGIN/COMMIT round trips on the hot path. It is
    # prepared once per connection where the settings allow (STRATA_DB_PREPARED_STATEMENTS):
    # planning it cost the database more CPU than running it for one event.
    with connection.wrap_database_errors:
        cursor = _store_cursor()
        cursor.execute(statement, params, prepare=True)
        return cursor.rowcount


def record_failures(
    failures: Iterable[Failure],
    *,
    account: Account | None,
    stream: str = "",
    source: str,
    received_at: datetime | None = None,
    key_prefix: str = "",
    remote_addr: str | None = None,
) -> int:
    """Keep refused messages with their reason and (truncated) body."""
    rows = []
    for failure in failures:
        body = failure.body
        if isinstance(body, bytes):
            body = body[: FailedEvent.BODY_LIMIT + 1].decode("utf-8", errors="replace")
        truncated = len(body) > FailedEvent.BODY_LIMIT
        rows.append(FailedEvent(
            account=account, stream=stream[:100], received_at=received_at or timezone.now(),
            source=source, code=failure.code[:64], reason=failure.reason,
            body=body[: FailedEvent.BODY_LIMIT].replace("\x00", "\ufffd"),
            body_truncated=truncated, line=failure.line,
            message_id=_clip(failure.message_id, MESSAGE_ID_MAX), key_prefix=key_prefix[:16],
            remote_addr=remote_addr,
        ))
    FailedEvent.objects.bulk_create(rows)
    return len(rows)


def check_quota(account: Account, now: datetime) -> None:
    """Raise QuotaExceeded (and tell the Admins once) when the account is over its monthly
    quota; every path checks this before storing anything."""
    retry_after = quota_exceeded(account, now)
    if retry_after is not None:
        notify_quota_reached(account, now)
        raise QuotaExceeded(retry_after)


@dataclass
class Outcome:
    stored: int
    duplicates: int
    failed: int
    suppressed: int = 0


def accept(
    account: Account,
    stream: str,
    events: list[IncomingEvent],
    failures: list[Failure],
    *,
    source: str,
    received_at: datetime,
    write_key_id: int | None = None,
    key_prefix: str = "",
    remote_addr: str | None = None,
) -> Outcome:
    """What every path calls: quota, tracking plans, store, and keep what was refused.

    Raises QuotaExceeded (nothing is stored) when the account is over its monthly quota.
    Events carrying a suppressed identifier are dropped and counted, not stored.
    """
    check_quota(account, received_at)
    events, suppressed = drop_suppressed(account, events)
    if suppressed:
        count_suppressed(account, stream, received_at.date(), suppressed)
    kept, blocked = apply_plans(account, stream, events)
    failures = [*failures, *blocked]
    stored = store_events(account, stream, kept, source=source, received_at=received_at,
                          write_key_id=write_key_id)
    if failures:
        record_failures(failures, account=account, stream=stream, source=source,
                        received_at=received_at, key_prefix=key_prefix, remote_addr=remote_addr)
    return Outcome(stored=stored, duplicates=len(kept) - stored, failed=len(failures),
                   suppressed=suppressed)
