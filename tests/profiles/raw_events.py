"""Builders for stream explorer tests: raw events stored through collect, and aggregation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from cdp_site.models import Account
from profiles.collection.messages import IncomingEvent
from profiles.collection.store import store_events
from profiles.explorer import aggregate

_counter = iter(range(1, 10**9))


def ago(**delta: float) -> datetime:
    return datetime.now(UTC) - timedelta(**delta)


def track(event: str = "Order Completed", **properties: Any) -> dict[str, Any]:
    return {"type": "track", "event": event, "userId": "u1", "properties": properties}


def store(account: Account, messages: list[dict[str, Any]], *, stream: str = "web",
          received_at: datetime | None = None,
          warnings: list[dict[str, Any]] | None = None) -> int:
    """Store messages as collect does (received a minute ago unless told), one statement."""
    events = []
    for message in messages:
        message = {"messageId": f"m-{next(_counter)}", **message}
        events.append(IncomingEvent(
            message=message, message_id=message["messageId"], type=message.get("type", ""),
            event=message.get("event", ""), user_id=message.get("userId", ""),
            warnings=list(warnings or []),
        ))
    return store_events(account, stream, events, source="test",
                        received_at=received_at or ago(minutes=1))


def run_aggregator(**kwargs: Any) -> aggregate.AggregateResult:
    kwargs.setdefault("settle_seconds", 0)
    return aggregate.aggregate_streams(**kwargs)
