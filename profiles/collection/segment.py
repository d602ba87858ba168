"""Segment's HTTP Tracking API spec (PROTOCOLS.md §1): request bodies to events.

Pure functions, no I/O: a parsed JSON body goes in, ``IncomingEvent``s and ``Failure``s come
out. A body that cannot be a request at all raises ``IntakeError`` (the whole request is
refused); a message that breaks a rule becomes a ``Failure`` alone and the rest are kept.

This is the collection hot path (thousands of messages a second), so each message costs a
few dict lookups, one time parse and one ``json.dumps`` (which also measures its size).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from profiles.collection.intake import IntakeError
from profiles.collection.messages import (
    MAX_BATCH_MESSAGES,
    Failure,
    IncomingEvent,
    client_message_id,
    event_time,
    new_message_id,
    parse_time,
)
from profiles.collection.store import encode_message

if TYPE_CHECKING:
    from datetime import datetime

TYPES = frozenset({"identify", "track", "page", "screen", "group", "alias"})
# analytics.js posts to /v1/t, /v1/p... (the short paths name the same types).
SHORT_TYPES = {"i": "identify", "t": "track", "p": "page", "s": "screen", "g": "group",
               "a": "alias", "b": "batch"}
# Fields a type needs besides userId/anonymousId (Segment's spec; clients always send them).
REQUIRED = {"track": ("event", "missing_event"), "alias": ("previousId", "missing_previous_id"),
            "group": ("groupId", "missing_group_id")}

REASONS = {
    "invalid_message": "A message must be a JSON object.",
    "invalid_type": "type must be one of identify, track, page, screen, group, alias.",
    "invalid_message_id": "messageId must be a string.",
    "no_user_anon_id": "The message has neither userId nor anonymousId (one is required).",
    "missing_event": "A track message needs an event name.",
    "missing_previous_id": "An alias message needs previousId.",
    "missing_group_id": "A group message needs groupId.",
    "message_too_large": "The message is over 32 KB.",
    "too_deep": "The message nests objects or arrays more than 32 levels deep.",
}


def message_kind(name: str) -> str:
    """The message type a path names: `track` or `t` -> track; `batch`/`b`/`import` -> batch."""
    if name == "import":
        return "batch"
    return SHORT_TYPES.get(name, name)


def parse_request(
    kind: str, body: Any, received_at: datetime
) -> tuple[list[IncomingEvent], list[Failure]]:
    """A request to /v1/{kind}: a batch body, or one message of that type."""
    if kind == "batch":
        return parse_batch(body, received_at)
    if not isinstance(body, dict):
        raise IntakeError(400, "invalid_body", "The body must be a JSON object (a message).")
    body.pop("writeKey", None)
    result = parse_message(body, received_at, kind=kind)
    if isinstance(result, Failure):
        return [], [result]
    return [result], []


def parse_batch(body: Any, received_at: datetime) -> tuple[list[IncomingEvent], list[Failure]]:
    """`{"batch": [...], "context"?, "integrations"?, "sentAt"?, "writeKey"?}`; the top-level
    context and integrations merge into each message (the message's own keys win)."""
    if not isinstance(body, dict):
        raise IntakeError(400, "invalid_body", 'The body must be a JSON object with "batch".')
    messages = body.get("batch")
    if not isinstance(messages, list):
        raise IntakeError(400, "invalid_batch", '"batch" must be a list of messages.')
    if len(messages) > MAX_BATCH_MESSAGES:
        raise IntakeError(400, "too_many_messages",
                          f"A batch holds at most {MAX_BATCH_MESSAGES:,} messages "
                          f"(this one has {len(messages):,}).")
    context = body.get("context")
    integrations = body.get("integrations")
    sent_at = parse_time(body.get("sentAt"))
    events: list[IncomingEvent] = []
    failures: list[Failure] = []
    for position, message in enumerate(messages, start=1):
        result = parse_message(
            message, received_at, position=position, sent_at=sent_at,
            context=context if isinstance(context, dict) and context else None,
            integrations=integrations if isinstance(integrations, dict) and integrations
            else None,
        )
        if isinstance(result, Failure):
            failures.append(result)
        else:
            events.append(result)
    return events, failures


def id_text(value: Any) -> str:
    """userId / anonymousId as text: strings and numbers; null, blank and objects are absent."""
    if isinstance(value, str):
        return value if value.strip() else ""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return ""


def _merged(own: Any, shared: dict[str, Any]) -> Any:
    if own is None:
        return shared
    if isinstance(own, dict):
        return {**shared, **own}
    return own


def parse_message(
    message: Any,
    received_at: datetime,
    *,
    kind: str | None = None,
    position: int | None = None,
    sent_at: datetime | None = None,
    context: dict[str, Any] | None = None,
    integrations: dict[str, Any] | None = None,
) -> IncomingEvent | Failure:
    """One message checked against the spec. ``kind`` is the type the path names (it wins
    over the message's own); ``position`` is its place in a batch (1-based, kept as the failed
    event's line). The stored message gets a generated messageId when it had none."""
    if not isinstance(message, dict):
        return message_failure("invalid_message", message, position)
    message.pop("writeKey", None)
    if kind is not None:
        message["type"] = kind
        mtype = kind
    else:
        declared = message.get("type")
        if declared not in TYPES:
            return message_failure("invalid_type", message, position)
        mtype = declared
    if context is not None:
        message["context"] = _merged(message.get("context"), context)
    if integrations is not None:
        message["integrations"] = _merged(message.get("integrations"), integrations)
    warnings: list[dict[str, Any]] = []
    message_id = client_message_id(message.get("messageId"), warnings)
    if message_id is None:
        return message_failure("invalid_message_id", message, position)
    if not message_id:
        message_id = message["messageId"] = new_message_id()
    user_id = id_text(message.get("userId"))
    anonymous_id = id_text(message.get("anonymousId"))
    if not user_id and not anonymous_id:
        return message_failure("no_user_anon_id", message, position, message_id)
    event = ""
    required = REQUIRED.get(mtype)
    if required is not None:
        value = message.get(required[0])
        if not id_text(value):
            return message_failure(required[1], message, position, message_id)
        if mtype == "track":
            event = str(value)
    stamp = message.get("timestamp")
    if stamp is None or stamp == "":
        stamp = message.get("originalTimestamp")
    own_sent = message.get("sentAt")
    event_at, sent = event_time(received_at, stamp,
                                sent_at if own_sent is None or own_sent == "" else own_sent,
                                warnings)
    encoded, problem = encode_message(message, warnings)
    if encoded is None:
        return message_failure(problem, message, position, message_id)
    return IncomingEvent(
        message=message, message_id=message_id, type=mtype, event=event, user_id=user_id,
        anonymous_id=anonymous_id, sent_at=sent, event_at=event_at, warnings=warnings,
        encoded=encoded,
    )


def failure_body(message: Any) -> str:
    """A refused message as text for the failed event (lone surrogates cannot be stored)."""
    try:
        body = json.dumps(message, ensure_ascii=False, default=str)
    except (ValueError, RecursionError):
        body = "(the message could not be serialized)"
    return body.encode("utf-8", "replace").decode("utf-8")


def message_failure(
    code: str, message: Any, position: int | None, message_id: str = ""
) -> Failure:
    """A refused message, with the reason for ``code`` and its place in the batch if any."""
    if not message_id and isinstance(message, dict):
        found = message.get("messageId")
        message_id = found if isinstance(found, str) else ""
    body = failure_body(message)
    reason = REASONS[code]
    if position is not None:
        reason = f"Message {position} of the batch: {reason[0].lower()}{reason[1:]}"
    return Failure(code=code, reason=reason, body=body, message_id=message_id, line=position)
