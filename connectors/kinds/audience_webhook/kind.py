"""Audience export to a webhook.

The cursor walks three phases: ``full`` (members by profile id, from 0), then ``changes``
(the membership change log by id, from the last id before the full sync began, so nothing
that changed during it is missed), and at the end of each run a ``sweep`` of what was
delivered but is no longer consented (a profile that withdrew consent is removed at the
destination). What was delivered as added is kept (``ExportedMember``), so an add is sent
once and a remove only for what was added. Only consented profiles (``connectors.consent``),
only the identifier fields and fields the job names, PII only when the creator may see it."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import phonenumbers
from django.db import connection
from django.db.models import Max

from audiences.models import Audience, AudienceMembership, MembershipChange
from connectors.consent import consented
from connectors.delivery import destination, message_digest, post_signed
from connectors.errors import InvalidInput, PermanentError
from connectors.jobs import creator_sees_pii
from connectors.models import ExportedMember, Job
from connectors.registry import Kind, RunContext, StepResult, register
from profiles.masking import pii_fields
from profiles.models import Profile, ProfileConsent


def hash_email(value: str) -> str | None:
    text = value.strip().lower()
    return hashlib.sha256(text.encode()).hexdigest() if "@" in text else None


def hash_phone(value: str) -> str | None:
    """SHA-256 of the E.164 form (``+14155550123``); numbers without a country code are read
    as US numbers; invalid numbers are left out."""
    try:
        number = phonenumbers.parse(value, "US")
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    return hashlib.sha256(e164.encode()).hexdigest()


HASHERS = {"email": hash_email, "phone": hash_phone}


@register
class AudienceWebhook(Kind):
    key = "audience_webhook"
    label = "Audience export to a webhook"
    description = ("Posts an audience's members, then its entries and exits, as signed "
                   "batches to a webhook.")
    example_config = {"audience": "gold", "path": "", "identifiers": ["email"], "fields": [],
                      "purposes": ["advertising"], "hash": {}, "batch_size": 1000}
    config_schema = {
        "type": "object",
        "required": ["audience"],
        "additionalProperties": False,
        "properties": {
            "audience": {"type": "string", "minLength": 1},
            "path": {"type": "string"},
            "batch_size": {"type": "integer", "minimum": 1, "maximum": 5000},
            "identifiers": {"type": "array", "items": {"type": "string"}},
            "fields": {"type": "array", "items": {"type": "string"}},
            "hash": {"type": "object",
                     "additionalProperties": {"enum": ["email", "phone"]}},
            "purposes": {"type": "array", "items": {"type": "string", "minLength": 1}},
        },
    }

    def check(self, job: Job, config: dict[str, Any]) -> dict[str, Any]:
        if not Audience.objects.for_account(job.account).filter(
                slug=config["audience"], archived=False).exists():
            raise InvalidInput("config.audience", f"no audience {config['audience']!r}")
        config.setdefault("batch_size", 1000)
        config.setdefault("identifiers", ["email"] if job.creator_sees_pii else [])
        config.setdefault("fields", [])
        config.setdefault("hash", {})
        config.setdefault("purposes", [])
        for name in config["hash"]:
            if name not in config["identifiers"]:
                raise InvalidInput(f"config.hash.{name}", "names an identifier the job does "
                                   "not send")
        if job.pk is None and not job.creator_sees_pii:
            pii = pii_fields(job.account_id)
            for key in ("identifiers", "fields"):
                for n, name in enumerate(config[key]):
                    if name in pii:
                        raise InvalidInput(f"config.{key}.{n}", f"{name} is PII; only members "
                                           "who may see PII may export it", code="pii_denied")
        return config

    def test_connection(self, ctx: RunContext) -> str:
        url = destination(ctx, ctx.job.config.get("path"))
        response = post_signed(ctx, url, {"type": "ping", "job": ctx.job.name},
                               f"msg_ping_{uuid.uuid4().hex}", timeout=10.0)
        return f"{url} answered {response.status} in {response.elapsed * 1000:.0f} ms"

    # ------------------------------------------------------------------ running

    def step(self, ctx: RunContext) -> StepResult:
        audience = ctx.extra.get("audience")
        if audience is None:
            audience = ctx.extra["audience"] = Audience.objects.for_account(
                ctx.job.account_id).filter(slug=ctx.job.config["audience"]).first()
        if audience is None:
            raise PermanentError(f"the audience {ctx.job.config['audience']!r} is gone",
                                 code="audience_missing")
        cursor = dict(ctx.cursor)
        if not cursor:
            last = MembershipChange.objects.filter(account_id=ctx.job.account_id).aggregate(
                last=Max("id"))["last"] or 0
            cursor = {"phase": "full", "after": 0, "log_from": last}
        if cursor["phase"] == "full":
            return self._full(ctx, audience, cursor)
        if cursor["phase"] == "changes":
            return self._changes(ctx, audience, cursor)
        return self._sweep(ctx, audience, cursor)

    def _full(self, ctx: RunContext, audience: Audience, cursor: dict[str, Any]) -> StepResult:
        size = ctx.job.config["batch_size"]
        with connection.cursor() as cur:
            cur.execute(_MEMBERS, {"audience": audience.pk, "job": ctx.job.pk,
                                   "after": cursor["after"], "limit": size,
                                   "account": ctx.job.account_id,
                                   "fields": self._sent_identifiers(ctx)})
            rows = cur.fetchall()
        adds: dict[int, datetime | None] = {}
        delivered: set[int] = set()
        found: dict[int, list[tuple[str, str]]] = {}
        for pid, since, done, field, value in rows:
            adds[pid] = since
            if done:
                delivered.add(pid)
            if field is not None:
                found.setdefault(pid, []).append((field, value))
        ctx.extra["identifiers"] = found
        following = ({"phase": "full", "after": max(adds), "log_from": cursor["log_from"]}
                     if len(adds) == size else {"phase": "changes", "after": cursor["log_from"]})
        return self._deliver(ctx, audience, cursor, following, adds=adds, removes={},
                             delivered=delivered)

    def _changes(self, ctx: RunContext, audience: Audience, cursor: dict[str, Any]
                 ) -> StepResult:
        size = ctx.job.config["batch_size"]
        rows = list(MembershipChange.objects.filter(
            account_id=ctx.job.account_id, audience=audience, id__gt=cursor["after"])
            .order_by("id").values_list("id", "profile_id", "at")[:size])
        touched = {pid: at for _id, pid, at in rows}  # each profile's latest change
        members = set(AudienceMembership.objects.filter(
            audience=audience, profile_id__in=list(touched)).values_list("profile_id",
                                                                          flat=True))
        following = ({"phase": "changes", "after": rows[-1][0]} if len(rows) == size
                     else {"phase": "sweep", "after": rows[-1][0] if rows else cursor["after"],
                           "swept": 0})
        return self._deliver(ctx, audience, cursor, following,
                             adds={p: at for p, at in touched.items() if p in members},
                             removes={p: at for p, at in touched.items() if p not in members})

    def _sweep(self, ctx: RunContext, audience: Audience, cursor: dict[str, Any]) -> StepResult:
        """Delivered profiles that no longer consent (or whose profile is gone): removed."""
        size = ctx.job.config["batch_size"]
        ids = list(ExportedMember.objects.filter(job=ctx.job, profile_id__gt=cursor["swept"])
                   .order_by("profile_id").values_list("profile_id", flat=True)[:size])
        keep = consented(ctx.job.account_id, ids, ctx.job.config["purposes"])
        following = {"phase": "changes", "after": cursor["after"]}
        done = len(ids) < size
        if not done:
            following = {**cursor, "swept": ids[-1]}
        gone = [p for p in ids if p not in keep]
        withdrawn = dict(ProfileConsent.objects.filter(
            account_id=ctx.job.account_id, profile_id__in=gone, granted=False)
            .order_by("at").values_list("profile_id", "at"))
        result = self._deliver(ctx, audience, cursor, following, adds={},
                               removes={p: withdrawn.get(p) for p in gone})
        result.done = done
        return result

    def _deliver(self, ctx: RunContext, audience: Audience, cursor: dict[str, Any],
                 following: dict[str, Any], adds: dict[int, datetime | None],
                 removes: dict[int, datetime | None], delivered: set[int] | None = None
                 ) -> StepResult:
        """Send what changed for these profiles (each with the time of its change, so a
        message sent again after a crash is the same message)."""
        job = ctx.job
        if delivered is None:
            delivered = _delivered(job.pk, [*adds, *removes])
        allowed = consented(job.account_id, adds, job.config["purposes"])
        new_adds = {p: at for p, at in adds.items() if p in allowed and p not in delivered}
        # Added before but no longer consented: removed like an exit.
        removes = {**removes, **{p: at for p, at in adds.items() if p not in allowed}}
        removes = {p: at for p, at in removes.items() if p in delivered}
        omitted = sum(1 for p in adds if p not in allowed and p not in delivered)
        prefetched = ctx.extra.pop("identifiers", None)  # this batch's, if read with it
        changes = [*self._entries(ctx, new_adds, "add", prefetched),
                   *self._entries(ctx, removes, "remove")]
        if changes:
            payload = {"type": "audience.membership",
                       "audience": {"id": audience.pk, "slug": audience.slug,
                                    "name": audience.name},
                       "changes": changes}
            # The same batch sent again after a crash keeps its id (receivers deduplicate);
            # a batch whose content changed meanwhile (a consent withdrawn) gets a new one.
            message_id = (f"msg_job{job.pk}_{cursor.get('phase')}_{cursor.get('after')}_"
                          f"{cursor.get('swept', '')}_{message_digest(payload)}")
            post_signed(ctx, destination(ctx, job.config.get("path")), payload, message_id)

        def commit() -> None:
            with connection.cursor() as cur:
                if new_adds:
                    cur.execute(_REMEMBER, {"account": job.account_id, "job": job.pk,
                                            "ids": list(new_adds)})
                if removes:
                    cur.execute(_FORGET, {"job": job.pk, "ids": list(removes)})

        return StepResult(cursor=following, done=False, added=len(new_adds),
                          removed=len(removes), omitted=omitted, commit=commit)

    def _hidden(self, ctx: RunContext) -> frozenset[str]:
        """The PII fields this run leaves out (none when the creator may see PII)."""
        if "hidden" not in ctx.extra:  # decided once per run
            ctx.extra["hidden"] = (frozenset() if creator_sees_pii(ctx.job)
                                   else pii_fields(ctx.job.account_id))
        hidden: frozenset[str] = ctx.extra["hidden"]
        return hidden

    def _sent_identifiers(self, ctx: RunContext) -> list[str]:
        hidden = self._hidden(ctx)
        return [f for f in ctx.job.config["identifiers"] if f not in hidden]

    def _entries(self, ctx: RunContext, ids: dict[int, datetime | None], action: str,
                 prefetched: dict[int, list[tuple[str, str]]] | None = None
                 ) -> list[dict[str, Any]]:
        if not ids:
            return []
        job = ctx.job
        config = job.config
        hidden = self._hidden(ctx)
        fields = [f for f in config["fields"] if f not in hidden]
        identifiers = _identifiers(job.account_id, ids, self._sent_identifiers(ctx),
                                   config["hash"], prefetched)
        values: dict[int, dict[str, Any]] = {}
        if fields and action == "add":
            for pid, fv in Profile.objects.filter(account_id=job.account_id, pk__in=ids
                                                  ).values_list("pk", "field_values"):
                values[pid] = {name: (fv or {}).get(name) for name in fields}
        return [{"action": action, "profile_id": pid, "identifiers": identifiers.get(pid, {}),
                 "fields": values.get(pid, {}), "at": at.isoformat() if at else None}
                for pid, at in ids.items()]


# The hot path's statements: id lists travel as one array parameter each.
# The full sync's batch: members, whether each was delivered, and their identifiers. LATERAL
# keeps the lookups per member on their indexes (a plain join hashed the whole tables; OFFSET 0
# keeps the planner from flattening the identifiers' subquery back into one).
_MEMBERS = """WITH m AS (
    SELECT profile_id, since FROM audiences_audiencemembership
    WHERE audience_id = %(audience)s AND profile_id > %(after)s
    ORDER BY profile_id LIMIT %(limit)s)
SELECT m.profile_id, m.since, e.done IS NOT NULL, i.field, i.value
FROM m
LEFT JOIN LATERAL (SELECT true AS done FROM connectors_exportedmember
                   WHERE job_id = %(job)s AND profile_id = m.profile_id LIMIT 1) e ON true
LEFT JOIN LATERAL (SELECT field, value, id FROM profiles_identifier
                   WHERE profile_id = m.profile_id AND account_id = %(account)s
                     AND field = ANY(%(fields)s::text[]) AND active OFFSET 0) i ON true
ORDER BY m.profile_id, i.field, i.id"""
_DELIVERED = """SELECT profile_id FROM connectors_exportedmember
WHERE job_id = %(job)s AND profile_id = ANY(%(ids)s::bigint[])"""
_REMEMBER = """INSERT INTO connectors_exportedmember (account_id, job_id, profile_id)
SELECT %(account)s, %(job)s, unnest(%(ids)s::bigint[]) ON CONFLICT DO NOTHING"""
_FORGET = """DELETE FROM connectors_exportedmember
WHERE job_id = %(job)s AND profile_id = ANY(%(ids)s::bigint[])"""
_IDENTIFIERS = """SELECT profile_id, field, value FROM profiles_identifier
WHERE account_id = %(account)s AND profile_id = ANY(%(ids)s::bigint[])
  AND field = ANY(%(fields)s::text[]) AND active ORDER BY profile_id, field, id"""


def _delivered(job_id: int, ids: list[int]) -> set[int]:
    if not ids:
        return set()
    with connection.cursor() as cur:
        cur.execute(_DELIVERED, {"job": job_id, "ids": ids})
        return {row[0] for row in cur.fetchall()}


def _identifiers(account_id: int, ids: Iterable[int], fields: list[str],
                 hashing: dict[str, str],
                 prefetched: dict[int, list[tuple[str, str]]] | None = None
                 ) -> dict[int, dict[str, list[str]]]:
    """Each profile's identifier values by field (hashed where asked), read with the batch
    (``prefetched``, the full sync) or here."""
    out: dict[int, dict[str, list[str]]] = {}
    if not fields:
        return out
    if prefetched is not None:
        rows = [(pid, field, value) for pid in ids for field, value in prefetched.get(pid, ())]
    else:
        with connection.cursor() as cur:
            cur.execute(_IDENTIFIERS, {"account": account_id, "ids": list(ids),
                                       "fields": fields})
            rows = cur.fetchall()
    for pid, field, value in rows:
        kind = hashing.get(field)
        sent = HASHERS[kind](value) if kind else value
        if sent is not None:
            out.setdefault(pid, {}).setdefault(field, []).append(sent)
    return out

