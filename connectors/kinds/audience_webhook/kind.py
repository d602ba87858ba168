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
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import phonenumbers
from django.db.models import Max

from audiences.models import Audience, AudienceMembership, MembershipChange
from connectors.consent import consented
from connectors.delivery import destination, post_signed
from connectors.errors import InvalidInput, PermanentError
from connectors.jobs import creator_sees_pii
from connectors.models import ExportedMember, Job
from connectors.registry import Kind, RunContext, StepResult, register
from profiles.masking import pii_fields
from profiles.models import Identifier, Profile


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

    # ------------------------------------------------------------------ running

    def step(self, ctx: RunContext) -> StepResult:
        audience = Audience.objects.for_account(ctx.job.account_id).filter(
            slug=ctx.job.config["audience"]).first()
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
        ids = list(AudienceMembership.objects.filter(
            account_id=ctx.job.account_id, audience=audience, profile_id__gt=cursor["after"])
            .order_by("profile_id").values_list("profile_id", flat=True)[:size])
        following = ({"phase": "full", "after": ids[-1], "log_from": cursor["log_from"]}
                     if len(ids) == size else {"phase": "changes", "after": cursor["log_from"]})
        return self._deliver(ctx, audience, cursor, following, adds=ids, removes=[])

    def _changes(self, ctx: RunContext, audience: Audience, cursor: dict[str, Any]
                 ) -> StepResult:
        size = ctx.job.config["batch_size"]
        rows = list(MembershipChange.objects.filter(
            account_id=ctx.job.account_id, audience=audience, id__gt=cursor["after"])
            .order_by("id").values_list("id", "profile_id")[:size])
        touched = list(dict.fromkeys(pid for _id, pid in rows))
        members = set(AudienceMembership.objects.filter(
            audience=audience, profile_id__in=touched).values_list("profile_id", flat=True))
        following = ({"phase": "changes", "after": rows[-1][0]} if len(rows) == size
                     else {"phase": "sweep", "after": rows[-1][0] if rows else cursor["after"],
                           "swept": 0})
        return self._deliver(ctx, audience, cursor, following,
                             adds=[p for p in touched if p in members],
                             removes=[p for p in touched if p not in members])

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
        result = self._deliver(ctx, audience, cursor, following, adds=[],
                               removes=[p for p in ids if p not in keep])
        result.done = done
        return result

    def _deliver(self, ctx: RunContext, audience: Audience, cursor: dict[str, Any],
                 following: dict[str, Any], adds: list[int], removes: list[int]) -> StepResult:
        job = ctx.job
        delivered = set(ExportedMember.objects.filter(
            job=job, profile_id__in=[*adds, *removes]).values_list("profile_id", flat=True))
        allowed = consented(job.account_id, adds, job.config["purposes"])
        new_adds = [p for p in adds if p in allowed and p not in delivered]
        # Added before but no longer consented: removed like an exit.
        removes = [*removes, *(p for p in adds if p not in allowed and p in delivered)]
        removes = [p for p in removes if p in delivered]
        omitted = sum(1 for p in adds if p not in allowed and p not in delivered)
        at = ctx.now()
        changes = [*self._entries(job, new_adds, "add", at),
                   *self._entries(job, removes, "remove", at)]
        if changes:
            payload = {"type": "audience.membership",
                       "audience": {"id": audience.pk, "slug": audience.slug,
                                    "name": audience.name},
                       "changes": changes}
            message_id = f"msg_job{job.pk}_{cursor.get('phase')}_{cursor.get('after')}_" \
                         f"{cursor.get('swept', '')}"
            post_signed(ctx, destination(ctx, job.config.get("path")), payload, message_id)

        def commit() -> None:
            ExportedMember.objects.bulk_create(
                [ExportedMember(account_id=job.account_id, job=job, profile_id=p)
                 for p in new_adds], ignore_conflicts=True, batch_size=5000)
            if removes:
                ExportedMember.objects.filter(job=job, profile_id__in=removes).delete()

        return StepResult(cursor=following, done=False, added=len(new_adds),
                          removed=len(removes), omitted=omitted, commit=commit)

    def _entries(self, job: Job, ids: list[int], action: str, at: datetime
                 ) -> list[dict[str, Any]]:
        if not ids:
            return []
        config = job.config
        sees_pii = creator_sees_pii(job)
        hidden = frozenset() if sees_pii else pii_fields(job.account_id)
        id_fields = [f for f in config["identifiers"] if f not in hidden]
        fields = [f for f in config["fields"] if f not in hidden]
        identifiers = _identifiers(job.account_id, ids, id_fields, config["hash"])
        values: dict[int, dict[str, Any]] = {}
        if fields and action == "add":
            for pid, fv in Profile.objects.filter(account_id=job.account_id, pk__in=ids
                                                  ).values_list("pk", "field_values"):
                values[pid] = {name: (fv or {}).get(name) for name in fields}
        stamp = at.isoformat()
        return [{"action": action, "profile_id": pid, "identifiers": identifiers.get(pid, {}),
                 "fields": values.get(pid, {}), "at": stamp} for pid in ids]


def _identifiers(account_id: int, ids: Iterable[int], fields: list[str],
                 hashing: dict[str, str]) -> dict[int, dict[str, list[str]]]:
    out: dict[int, dict[str, list[str]]] = {}
    if not fields:
        return out
    rows = (Identifier.objects.filter(account_id=account_id, profile_id__in=list(ids),
                                      field__in=fields, active=True)
            .order_by("profile_id", "field", "id").values_list("profile_id", "field", "value"))
    for pid, field, value in rows:
        kind = hashing.get(field)
        sent = HASHERS[kind](value) if kind else value
        if sent is not None:
            out.setdefault(pid, {}).setdefault(field, []).append(sent)
    return out

