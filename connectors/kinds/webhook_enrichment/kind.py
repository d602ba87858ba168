"""Webhook enrichment.

For each profile of a chosen audience (by profile id), or for each new identifier of a chosen
field (by identifier id: each new profile with an email, say), the job calls an endpoint with
that identifier (a URL template, a method, a body template; ``{value}`` is replaced, URL-encoded
in the URL and JSON-escaped in the body) and stores the JSON answer in a stream as an event
``{"type": "track", "event": "enrichment", "origin": {<field>: <value>}, "response": {...}}``,
so the schema maps it like any other event (``origin.email``, ``response.loyalty_tier``).

Calls are paced to the job's rate limit, bounded in time and size; ``Retry-After`` is honoured.
A 404 means the endpoint knows nothing of the person (omitted); another 4xx, an answer that is
not JSON or is over 1 MB is that profile's error, logged, and the job goes on. Event message ids
are derived from the job and the identifier, so a batch stored again after a crash counts once
(the raw store's message-id dedupe)."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from django.utils import timezone

from audiences.models import Audience, AudienceMembership
from connectors.delivery import call_signed, destination
from connectors.errors import InvalidInput, PermanentError, TransientError
from connectors.models import Job
from connectors.registry import Kind, RunContext, StepResult, register
from profiles.collection.messages import IncomingEvent
from profiles.collection.store import accept
from profiles.models import Identifier

EVENT = "enrichment"


@register
class WebhookEnrichment(Kind):
    key = "webhook_enrichment"
    label = "Webhook enrichment"
    description = ("Calls an endpoint for each profile with one of its identifiers and puts the "
                   "JSON answer into a stream as an event.")
    example_config = {"identifier": "email", "url": "crm/customers/{value}", "method": "GET",
                      "stream": "crm_enrichment", "rate_per_second": 10, "timeout": 10}
    config_schema = {
        "type": "object",
        "required": ["identifier", "url", "stream"],
        "additionalProperties": False,
        "properties": {
            "audience": {"type": "string", "minLength": 1},
            "identifier": {"type": "string", "minLength": 1},
            "url": {"type": "string", "minLength": 1},
            "method": {"enum": ["GET", "POST"]},
            "body": {"type": "string"},
            "stream": {"type": "string", "pattern": "^[a-z0-9_-]{1,100}$"},
            "rate_per_second": {"type": "number", "exclusiveMinimum": 0, "maximum": 1000},
            "timeout": {"type": "number", "exclusiveMinimum": 0, "maximum": 60},
            "batch_size": {"type": "integer", "minimum": 1, "maximum": 1000},
        },
    }

    def check(self, job: Job, config: dict[str, Any]) -> dict[str, Any]:
        if "{value}" not in config["url"] and "{value}" not in config.get("body", ""):
            raise InvalidInput("config.url", "the URL or the body must hold {value}")
        if config.get("audience") and not Audience.objects.for_account(job.account).filter(
                slug=config["audience"], archived=False).exists():
            raise InvalidInput("config.audience", f"no audience {config['audience']!r}")
        config.setdefault("method", "GET")
        config.setdefault("rate_per_second", 10)
        config.setdefault("timeout", 10)
        config.setdefault("batch_size", 100)
        return config

    def test_connection(self, ctx: RunContext) -> str:
        row = self._targets(ctx, 0, 1)
        value = row[0][1] if row else "test@example.com"
        response = self._call(ctx, value, "msg_test_connection")
        return (f"{response.url} answered {response.status} in "
                f"{response.elapsed * 1000:.0f} ms for {ctx.job.config['identifier']} {value}")

    def _targets(self, ctx: RunContext, after: int, size: int) -> list[tuple[int, str]]:
        """(cursor key, identifier value) pairs after ``after``."""
        config = ctx.job.config
        if config.get("audience"):
            members = list(AudienceMembership.objects.filter(
                account_id=ctx.job.account_id, audience__slug=config["audience"],
                profile_id__gt=after).order_by("profile_id")
                .values_list("profile_id", flat=True)[:size])
            values: dict[int, str] = {}
            for pid, value in (Identifier.objects.filter(
                    account_id=ctx.job.account_id, profile_id__in=members,
                    field=config["identifier"], active=True)
                    .order_by("profile_id", "-last_seen").values_list("profile_id", "value")):
                values.setdefault(pid, value)
            return [(pid, values[pid]) for pid in members if pid in values] + (
                [(members[-1], "")] if members and members[-1] not in values else [])
        return list(Identifier.objects.filter(
            account_id=ctx.job.account_id, field=config["identifier"], id__gt=after)
            .order_by("id").values_list("id", "value")[:size])

    def _call(self, ctx: RunContext, value: str, message_id: str) -> Any:
        config = ctx.job.config
        url = destination(ctx, config["url"].replace("{value}", quote(value, safe="")))
        body = config.get("body", "").replace("{value}", json.dumps(value)[1:-1]).encode()
        return call_signed(ctx, config["method"], url, body, message_id,
                           timeout=float(config["timeout"]))

    def step(self, ctx: RunContext) -> StepResult:
        config = ctx.job.config
        after = int(ctx.cursor.get("after", 0))
        targets = self._targets(ctx, after, config["batch_size"])
        if not targets:
            return StepResult(cursor={"after": after}, done=True)
        interval = 1.0 / float(config["rate_per_second"])
        pace = ctx.extra.setdefault("next_call", ctx.monotonic())
        events: list[IncomingEvent] = []
        problems: list[str] = []
        omitted = 0
        for key, value in targets:
            if not value:
                omitted += 1
                continue
            wait = pace - ctx.monotonic()
            if wait > 0:
                ctx.sleep(wait)
            pace = max(pace, ctx.monotonic() - interval) + interval
            message_id = f"enrich-{ctx.job.pk}-{key}"
            try:
                response = self._call(ctx, value, message_id)
                data = response.json()
            except TransientError:
                ctx.extra["next_call"] = pace
                raise  # the job backs off; this batch is retried from its start
            except PermanentError as exc:
                if exc.code == "http_404":
                    omitted += 1
                    continue
                if exc.code == "address_not_allowed":
                    raise
                problems.append(f"{config['identifier']} #{key}: {exc.message}")
                continue
            events.append(IncomingEvent(
                message={"type": "track", "event": EVENT, "messageId": message_id,
                         "origin": {config["identifier"]: value}, "response": data},
                message_id=message_id, type="track", event=EVENT, event_at=ctx.now()))
        ctx.extra["next_call"] = pace
        account = ctx.job.account
        stream = config["stream"]

        def commit() -> None:
            if events:
                accept(account, stream, events, [], source="connector",
                       received_at=timezone.now())

        return StepResult(cursor={"after": targets[-1][0]}, done=False, added=len(events),
                          omitted=omitted, errors=len(problems), problems=problems,
                          commit=commit)
