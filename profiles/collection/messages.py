"""What arrives, before it is stored: the limits every collection path applies (Segment's HTTP
API limits, PROTOCOLS.md §1), the message types the paths hand to the store (``IncomingEvent``,
``Failure``), event times with skew correction, and message ids. Pure: no I/O, so the parsers,
tracking plans and the store all build on it.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from django.utils import timezone
from django.utils.dateparse import parse_datetime

# Limits of the Segment HTTP API (PROTOCOLS.md §1), applied to every path.
MAX_REQUEST_BYTES = 500 * 1024
MAX_MESSAGE_BYTES = 32 * 1024
MAX_BATCH_MESSAGES = 2500
MAX_DECOMPRESSED_BYTES = 4 * MAX_REQUEST_BYTES  # gzip bombs stop here
MAX_JSON_DEPTH = 32
MAX_FUTURE_SKEW = timedelta(days=1)
MESSAGE_ID_MAX = 200


class QuotaExceeded(Exception):
    """The account is over its monthly event quota: answer 429 with Retry-After."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"The account's monthly event quota is used up; retry in {retry_after}s.")
        self.retry_after = retry_after


@dataclass
class IncomingEvent:
    """One message ready to store: its body as received plus the columns pulled out of it."""

    message: dict[str, Any]
    message_id: str = ""
    type: str = ""
    event: str = ""
    user_id: str = ""
    anonymous_id: str = ""
    sent_at: datetime | None = None
    event_at: datetime | None = None
    warnings: list[dict[str, Any]] = field(default_factory=list)
    # The message already serialized as JSON (see encode_message): stored as is, so a path
    # that measured a message's size does not serialize it twice.
    encoded: str | None = None


@dataclass
class Failure:
    """A message (or request) refused, kept with its reason."""

    code: str
    reason: str
    body: str | bytes = ""
    message_id: str = ""
    line: int | None = None


def parse_time(value: Any) -> datetime | None:
    """An ISO 8601 string or epoch milliseconds/seconds as an aware datetime, else None."""
    kind = type(value)
    if kind is str and value:  # the usual case, as parse_datetime would take it first
        try:
            iso = datetime.fromisoformat(value.strip())
        except ValueError:
            pass  # other forms: below
        else:
            return iso if iso.tzinfo is not None else iso.replace(tzinfo=UTC)
    elif kind is datetime and value.utcoffset() is not None:  # a batch's sentAt, parsed once
        return value
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return None
    if isinstance(value, datetime):  # already parsed (a batch's sentAt, parsed once)
        return value if timezone.is_aware(value) else timezone.make_aware(value, UTC)
    if isinstance(value, int | float):
        seconds = value / 1000 if value > 1e11 else value
        try:
            return datetime.fromtimestamp(seconds, tz=UTC)
        except (OverflowError, OSError, ValueError):
            return None
    if isinstance(value, str):
        try:
            parsed = parse_datetime(value.strip())
        except ValueError:
            return None
        if parsed is None:
            return None
        if timezone.is_naive(parsed):
            parsed = timezone.make_aware(parsed, UTC)
        return parsed
    return None


def event_time(
    received_at: datetime, timestamp: Any, sent_at: Any, warnings: list[dict[str, Any]]
) -> tuple[datetime, datetime | None]:
    """The event's time, corrected for the client's clock skew (Segment's rule:
    timestamp = receivedAt - (sentAt - timestamp)), and the parsed sentAt. A timestamp that is
    not a date, or lies more than a day in the future, is replaced by the received time and
    recorded as a warning on the event."""
    sent = parse_time(sent_at)
    if timestamp in (None, ""):
        return received_at, sent
    stamp = parse_time(timestamp)
    if stamp is None:
        warnings.append({"code": "invalid_timestamp",
                         "message": f"timestamp {str(timestamp)[:64]!r} is not a date; "
                                    "the received time was used"})
        return received_at, sent
    corrected = received_at - (sent - stamp) if sent is not None else stamp
    if corrected - received_at > MAX_FUTURE_SKEW:
        warnings.append({"code": "future_timestamp",
                         "message": f"timestamp {str(timestamp)[:64]!r} is more than a day "
                                    "ahead; the received time was used"})
        return received_at, sent
    return corrected, sent


def json_depth_exceeds(value: Any, limit: int = MAX_JSON_DEPTH) -> bool:
    """True when containers nest deeper than the limit (checked without recursion)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children: Iterable[Any]
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def new_message_id() -> str:
    return f"strata-{uuid.uuid4()}"


MESSAGE_ID_CLIENT_MAX = 99  # Segment's rule: a messageId is under 100 characters


def client_message_id(value: Any, warnings: list[dict[str, Any]]) -> str | None:
    """The dedupe key for a client's message id: the id itself, or for an over-long one a
    stable digest of it (so a retried message is still stored once), with a warning. None
    when the value cannot be an id (an object, a list, a boolean); "" when absent."""
    if value is None or value == "":
        return ""
    if isinstance(value, str):
        text = value
    elif isinstance(value, int | float) and not isinstance(value, bool):
        text = str(value)
    else:
        return None
    if len(text) > MESSAGE_ID_CLIENT_MAX:
        warnings.append({"code": "message_id_too_long",
                         "message": f"messageId has {len(text)} characters (the limit is "
                                    f"{MESSAGE_ID_CLIENT_MAX}); a digest of it was used"})
        return "sha1-" + hashlib.sha1(text.encode("utf-8", "replace")).hexdigest()  # noqa: S324
    return text
