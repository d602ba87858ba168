"""The Lytics tag's collection format (PROTOCOLS.md §2) and JSON records from servers.

Pure functions, no I/O. The tag (jstag) flattens an object into a query string: nested keys
as ``user.id=22``; arrays as ``tags_len=2&tags_json=<urlencoded JSON>`` followed by each
element serialized under the same name (``tags=a&tags=b``, ``items.sku=1``), which we ignore
because the ``_json`` copy is exact. Every value arrives as a string. Long payloads come as a
form POST whose one field ``_js`` holds that query string.

``POST /collect/json/{stream}`` takes one JSON object or an array of them: any records a
server (or strata.js) sends, stored as they are, with ids and times read from the fields
documented in docs/collection.md.
"""

from __future__ import annotations

import json
import re
import uuid
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from profiles.collection.intake import IntakeError
from profiles.collection.messages import (
    MAX_BATCH_MESSAGES,
    MAX_JSON_DEPTH,
    Failure,
    IncomingEvent,
    client_message_id,
    event_time,
    new_message_id,
)
from profiles.collection.segment import TYPES, id_text, message_failure
from profiles.collection.store import encode_message

if TYPE_CHECKING:
    from datetime import datetime

MAX_FIELDS = 5000  # fields in one query string or `_js` payload
VISITOR_COOKIE = "seerid"
VISITOR_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
CALLBACK = re.compile(r"[A-Za-z_$][\w$]*(?:\.[A-Za-z_$][\w$]*)*")
PAGE_VIEW = "pv"


def parse_query(query: str | bytes) -> list[tuple[str, str]]:
    """A query string (or `_js` payload, or form body) as decoded pairs; bytes that are not
    UTF-8, raw or percent-encoded, refuse the request."""
    try:
        text = query.decode("utf-8") if isinstance(query, bytes) else query
        return parse_qsl(text, keep_blank_values=True, encoding="utf-8", errors="strict",
                         max_num_fields=MAX_FIELDS)
    except UnicodeDecodeError as exc:
        raise IntakeError(400, "invalid_encoding",
                          f"The data is not UTF-8 (byte {exc.start}).") from None
    except ValueError:
        raise IntakeError(400, "too_many_fields",
                          f"The data has more than {MAX_FIELDS:,} fields.") from None


def form_payload(pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """A form POST: the `_js` field holds the tag's query string; any other form is taken
    field by field, flattened the same way."""
    for key, value in pairs:
        if key == "_js":
            return parse_query(value)
    return pairs


def unflatten(pairs: list[tuple[str, str]], warnings: list[dict[str, Any]]) -> dict[str, Any]:
    """Flattened keys back into objects: ``user.id=22`` -> ``{"user": {"id": "22"}}``; a
    ``key_len`` + ``key_json`` pair -> the array. A repeated key keeps its first value (for
    an array of arrays, jstag repeats ``key_json`` for each inner array after the outer one).
    Raises ValueError when keys nest deeper than the JSON depth limit."""
    flat: dict[str, str] = {}
    for key, value in pairs:
        flat.setdefault(key, value)
    arrays = _arrays(flat)
    data: dict[str, Any] = {}
    for key, value in flat.items():
        if arrays and _covered(key, arrays):
            continue
        _put(data, key, value, warnings)
    for base, array in arrays.items():
        _put(data, base, array, warnings)
    return data


def _arrays(flat: dict[str, str]) -> dict[str, list[Any]]:
    found: dict[str, list[Any]] = {}
    for key, value in flat.items():
        if not key.endswith("_json"):
            continue
        base = key[:-5]
        if not base or f"{base}_len" not in flat:
            continue
        try:
            parsed = json.loads(value, parse_constant=_no_constant, parse_float=_finite_float)
        except (ValueError, RecursionError):
            continue
        if isinstance(parsed, list):
            found[base] = parsed
    # An array inside another array's elements is already in the outer one's JSON.
    return {base: value for base, value in found.items()
            if not any(base.startswith(other + ".") for other in found if other != base)}


def _finite_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError(text)
    return value


def _no_constant(name: str) -> Any:
    raise ValueError(name)


def _covered(key: str, arrays: dict[str, list[Any]]) -> bool:
    """Keys an array's `_json` copy makes redundant: its `_len`, `_json`, and its elements."""
    for base in arrays:
        if key.startswith(base) and (
            len(key) == len(base) or key[len(base)] == "." or key[len(base):] in ("_len", "_json")
        ):
            return True
    return False


def _put(data: dict[str, Any], key: str, value: Any, warnings: list[dict[str, Any]]) -> None:
    path = key.split(".")
    if len(path) > MAX_JSON_DEPTH:
        raise ValueError(key)
    node = data
    for part in path[:-1]:
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        elif not isinstance(child, dict):
            _conflict(key, warnings)
            return
        node = child
    last = path[-1]
    if isinstance(node.get(last), dict):
        _conflict(key, warnings)
        return
    node[last] = value


def _conflict(key: str, warnings: list[dict[str, Any]]) -> None:
    warnings.append({"code": "conflicting_key",
                     "message": f"{key[:100]!r} is both a value and an object; the object kept"})


def tag_message(
    pairs: list[tuple[str, str]], received_at: datetime, *, cookie_uid: str = ""
) -> IncomingEvent | Failure:
    """One hit of the tag (a GET query or a `_js` form) as an event. `_uid` (else the seerid
    cookie sent with the request) is the anonymous id; `_ts` is the send time, so the event
    time is the received time (a `_ts` that is not a time is kept with a warning)."""
    warnings: list[dict[str, Any]] = []
    try:
        data = unflatten(pairs, warnings)
    except ValueError:
        return message_failure("too_deep", dict(pairs), None)
    return record_event(data, received_at, warnings=warnings, cookie_uid=cookie_uid,
                        send_time_field="_ts")


def parse_records(
    body: Any, received_at: datetime, *, timestamp_field: str | None = None
) -> tuple[list[IncomingEvent], list[Failure]]:
    """A JSON collection body: one object, or an array of at most 2,500 objects."""
    if isinstance(body, dict):
        records: list[Any] = [body]
        positions = False
    elif isinstance(body, list):
        records = body
        positions = True
    else:
        raise IntakeError(400, "invalid_body",
                          "The body must be a JSON object or an array of objects.")
    if len(records) > MAX_BATCH_MESSAGES:
        raise IntakeError(400, "too_many_messages",
                          f"One request holds at most {MAX_BATCH_MESSAGES:,} messages "
                          f"(this one has {len(records):,}).")
    events: list[IncomingEvent] = []
    failures: list[Failure] = []
    for index, record in enumerate(records, start=1):
        position = index if positions else None
        if not isinstance(record, dict):
            failures.append(message_failure("invalid_message", record, position))
            continue
        record.pop("writeKey", None)
        result = record_event(record, received_at, position=position,
                              timestamp_field=timestamp_field)
        if isinstance(result, Failure):
            failures.append(result)
        else:
            events.append(result)
    return events, failures


def _first(data: dict[str, Any], *names: str) -> Any:
    for name in names:
        value = data.get(name)
        if value is not None and value != "":
            return value
    return None


def _dig(data: dict[str, Any], path: str) -> Any:
    node: Any = data
    for part in path.split("."):
        if not isinstance(node, dict):
            return None
        node = node.get(part)
    return node


def _time_value(value: Any) -> Any:
    """Epoch times arrive as digit strings from the tag (`_ts=1700000000000`)."""
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return value


def record_event(
    data: dict[str, Any],
    received_at: datetime,
    *,
    warnings: list[dict[str, Any]] | None = None,
    position: int | None = None,
    cookie_uid: str = "",
    timestamp_field: str | None = None,
    send_time_field: str | None = None,
) -> IncomingEvent | Failure:
    """A record as an event. Message id: `messageId`, else `_mid`, else generated (never
    `id`, which names the record, not the message). Anonymous id: `anonymousId`, else `_uid`,
    else the cookie. User id: `userId`, else `user_id`. Type: a Segment type given in `type`;
    else `page` for `_e=pv`, `track` when `event` or `_e` names an event, else blank (a plain
    record). Time: `timestamp_field` if given, else `timestamp`, `originalTimestamp`, `_ts`;
    corrected for skew by `sentAt` (the tag: by `_ts`, its send time)."""
    warnings = [] if warnings is None else warnings
    message_id = client_message_id(_first(data, "messageId", "_mid"), warnings)
    if message_id is None:
        return message_failure("invalid_message_id", data, position)
    if not message_id:
        message_id = new_message_id()
    user_id = id_text(data.get("userId")) or id_text(data.get("user_id"))
    anonymous_id = id_text(data.get("anonymousId")) or id_text(data.get("_uid")) or cookie_uid
    mtype = data.get("type")
    lytics_event = id_text(data.get("_e"))
    event = id_text(data.get("event")) or (lytics_event if lytics_event != PAGE_VIEW else "")
    if mtype not in TYPES:
        mtype = "page" if lytics_event == PAGE_VIEW else "track" if event else ""
    elif mtype != "track":
        event = ""
    if send_time_field is not None:
        stamp = sent = _time_value(data.get(send_time_field))
    else:
        stamp = (_dig(data, timestamp_field) if timestamp_field else
                 _first(data, "timestamp", "originalTimestamp", "_ts"))
        stamp, sent = _time_value(stamp), _time_value(data.get("sentAt"))
    event_at, sent_at = event_time(received_at, stamp, sent, warnings)
    encoded, problem = encode_message(data, warnings)
    if encoded is None:
        return message_failure(problem, data, position, message_id)
    return IncomingEvent(
        message=data, message_id=message_id, type=mtype, event=event, user_id=user_id,
        anonymous_id=anonymous_id, sent_at=sent_at, event_at=event_at, warnings=warnings,
        encoded=encoded,
    )


def visitor_id(cookie: str | None) -> tuple[str, bool]:
    """The visitor id from the seerid cookie, or a new one; and whether it is new."""
    if cookie and VISITOR_ID.fullmatch(cookie):
        return cookie, False
    return uuid.uuid4().hex, True


def jsonp(callback: str, value: str) -> str | None:
    """`callback("id");` for the tag's /cid/ call, or None when the callback is not a plain
    JavaScript name (anything else would let a page inject script)."""
    if len(callback) > 100 or not CALLBACK.fullmatch(callback):
        return None
    return f"{callback}({json.dumps(value)});"
