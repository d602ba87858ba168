"""Event forwarding: the events of chosen streams, exactly as received, POSTed in signed
batches to one webhook (one destination per job, many jobs per stream).

The cursor is the raw event id. Only processed events are forwarded (those below the
account's oldest pending event), so each one's profile is known; with consent purposes set,
only events of profiles that granted them all go (events that belong to no profile are left
out, counted as omitted). Batches are ``{"type": "events", "events": [{"id", "stream",
"received_at", "message"}]}``, with a ``webhook-id`` derived from the batch's first and last
event ids and its content, so a batch sent again after a crash is the same message."""

from __future__ import annotations

import hashlib
from typing import Any

import orjson
from django.db import connection

from connectors.consent import consented
from connectors.delivery import destination, message_digest, post_signed
from connectors.models import Job
from connectors.registry import Kind, RunContext, StepResult, register

_EVENTS = """
SELECT r.id, r.stream, r.received_at, r.message::text, pe.profile_id
FROM profiles_rawevent r
LEFT JOIN LATERAL (SELECT profile_id FROM profiles_profileevent p
                   WHERE p.raw_event_id = r.id AND p.account_id = r.account_id LIMIT 1) pe
       ON true
WHERE r.account_id = %(account)s AND r.stream = ANY(%(streams)s::text[]) AND r.id > %(after)s
  AND r.id < coalesce((SELECT min(raw_event_id) FROM profiles_pendingevent
                       WHERE account_id = %(account)s), 9223372036854775807)
ORDER BY r.id LIMIT %(limit)s
"""


@register
class EventForwarding(Kind):
    key = "event_forwarding"
    label = "Event forwarding"
    description = "Forwards the events of chosen streams, as received, to a webhook."
    example_config = {"streams": ["web"], "path": "", "purposes": [], "batch_size": 500}
    config_schema = {
        "type": "object",
        "required": ["streams"],
        "additionalProperties": False,
        "properties": {
            "streams": {"type": "array", "minItems": 1,
                        "items": {"type": "string", "pattern": "^[a-z0-9_-]{1,100}$"}},
            "path": {"type": "string"},
            "purposes": {"type": "array", "items": {"type": "string", "minLength": 1}},
            "batch_size": {"type": "integer", "minimum": 1, "maximum": 2000},
        },
    }

    def check(self, job: Job, config: dict[str, Any]) -> dict[str, Any]:
        config.setdefault("path", "")
        config.setdefault("purposes", [])
        config.setdefault("batch_size", 500)
        return config

    def test_connection(self, ctx: RunContext) -> str:
        url = destination(ctx, ctx.job.config.get("path"))
        response = post_signed(ctx, url, {"type": "ping", "job": ctx.job.name},
                               "msg_ping_" + hashlib.sha256(url.encode()).hexdigest()[:16],
                               timeout=10.0)
        return f"{url} answered {response.status} in {response.elapsed * 1000:.0f} ms"

    def step(self, ctx: RunContext) -> StepResult:
        config = ctx.job.config
        after = int(ctx.cursor.get("after", 0))
        with connection.cursor() as cur:
            cur.execute(_EVENTS, {"account": ctx.job.account_id, "streams": config["streams"],
                                  "after": after, "limit": config["batch_size"]})
            rows = cur.fetchall()
        if not rows:
            return StepResult(cursor={"after": after}, done=True)
        allowed: set[int] | None = None
        if config["purposes"]:
            allowed = consented(ctx.job.account_id, {r[4] for r in rows if r[4] is not None},
                                config["purposes"])
        kept = [r for r in rows if allowed is None or (r[4] is not None and r[4] in allowed)]
        if kept:
            payload = {"type": "events", "events": [
                {"id": rid, "stream": stream, "received_at": at.isoformat(),
                 "message": orjson.loads(message)} for rid, stream, at, message, _p in kept]}
            message_id = (f"msg_job{ctx.job.pk}_events_{rows[0][0]}_{rows[-1][0]}_"
                          f"{message_digest(payload)}")
            post_signed(ctx, destination(ctx, config.get("path")), payload, message_id)
        return StepResult(cursor={"after": rows[-1][0]}, done=len(rows) < config["batch_size"],
                          added=len(kept), omitted=len(rows) - len(kept))
