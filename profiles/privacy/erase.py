"""A delete request's work (issue #14, and #18 finding 4): what ``profiles.gdpr`` removes,
plus what else holds the person:

- raw events in every partition that carry one of their identifier values, processed or
  still waiting (their queue rows and processing warnings go with them);
- failed events that mention a value: the value is cut out of the kept body;
- the stream explorer's raw-key samples: every string the person's raw events carried (their
  identifiers, and any other value they sent) leaves the samples;
- what apps above profiles keep (experience assignments, impressions, conversions) through
  ``settings.STRATA_PERSON_ERASED_HOOKS``: ``(account_id, profile_ids, values, now)``.

One transaction, under an advisory lock per subject, so two deletes of one person run one
after the other: the second finds nothing left and ends done as well. A rebuild cannot bring
the person back: the raw events it would replay are gone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.db import connection, transaction
from django.utils import timezone

from cdp_site.hooks import hooks
from profiles import gdpr
from profiles.models import (
    EventWarning,
    FailedEvent,
    IdentityLog,
    PendingEvent,
    PrivacyRequest,
    RawKey,
)
from profiles.privacy.people import Person, find_person, raw_events_carrying
from profiles.privacy.suppress import suppress_values

if TYPE_CHECKING:
    from cdp_site.models import Account
    from cdp_site.tenancy import Actor

__all__ = ["Erasure", "erase_person", "subject_lock"]

ERASED = "[erased]"
SAMPLE_CHARS = 200  # RawKey samples keep strings cut to this (profiles.explorer.aggregate)
_CHUNK = 1000


@dataclass
class Erasure:
    found: bool
    profiles: int = 0
    merged_profiles: int = 0
    identifiers: int = 0
    profile_events: int = 0
    raw_events: int = 0
    failed_events: int = 0
    raw_key_samples: int = 0
    downstream: int = 0
    suppressed: int = 0

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def subject_lock(account: Account, subject: str) -> None:
    """Hold a transaction-scoped lock on one subject (an identifier hash) of an account."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))",
                       [account.pk % 2**31, subject])


def _strings(value: Any, into: set[str]) -> None:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            into.add(item[:SAMPLE_CHARS])
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def _purge_samples(account: Account, strings: set[str]) -> int:
    removed = 0
    for key in RawKey.objects.for_account(account).exclude(samples=[]).only("id", "samples"):
        kept = [s for s in key.samples if not (isinstance(s, str) and s in strings)]
        if len(kept) != len(key.samples):
            removed += len(key.samples) - len(kept)
            RawKey.objects.filter(pk=key.pk).update(samples=kept)
    return removed


def _redact_failed(account: Account, values: set[str], raw_ids: list[int]) -> int:
    """Cut the values out of failed events' bodies (a body may hold other people's messages
    too); failed events of the deleted raw events go whole."""
    gone, _ = FailedEvent.objects.for_account(account).filter(raw_event_id__in=raw_ids).delete()
    patterns = [re.compile(re.escape(v), re.IGNORECASE if "@" in v else 0) for v in values]
    changed = 0
    for value in values:
        lookup = "body__icontains" if "@" in value else "body__contains"
        for row in FailedEvent.objects.for_account(account).filter(**{lookup: value}) \
                .only("id", "body"):
            body = row.body
            for pattern in patterns:
                body = pattern.sub(ERASED, body)
            FailedEvent.objects.filter(pk=row.pk).update(body=body)
            changed += 1
    return gone + changed


def erase_person(actor: Actor, value: str, field_name: str, subject: str, *,
                 suppress: bool = False, request: PrivacyRequest | None = None) -> Erasure:
    """Delete everything of the person the value names (see the module docstring); with
    ``suppress``, their identifier values go on the suppression list in the same
    transaction."""
    account = actor.account
    with transaction.atomic():
        subject_lock(account, subject)
        person: Person = find_person(account, value, field_name)
        result = Erasure(found=person.found)
        if suppress:
            result.suppressed = suppress_values(account, person.values, subject, request)
        strings = set(person.values)
        raw = raw_events_carrying(account, person)
        raw_ids: list[int] = []
        for raw_id, message in raw.values_list("id", "message").iterator(chunk_size=_CHUNK):
            raw_ids.append(raw_id)
            _strings(message, strings)
        for profile in person.profiles:
            deletion = gdpr.delete_profile(actor, profile, looked_up_by=field_name or "any")
            result.profiles += 1
            result.merged_profiles += len(deletion.merged_profile_ids)
            result.identifiers += sum(deletion.identifiers.values())
            result.profile_events += deletion.profile_events
            result.raw_events += deletion.raw_events
        for start in range(0, len(raw_ids), _CHUNK):
            chunk = raw_ids[start:start + _CHUNK]
            EventWarning.objects.for_account(account).filter(raw_event_id__in=chunk).delete()
            PendingEvent.objects.for_account(account).filter(raw_event_id__in=chunk).delete()
            with connection.cursor() as cursor:
                cursor.execute("DELETE FROM profiles_rawevent WHERE account_id = %s "
                               "AND id = ANY(%s::bigint[])", [account.pk, chunk])
                result.raw_events += max(cursor.rowcount, 0)
        IdentityLog.objects.for_account(account).filter(value__in=person.values).update(value="")
        result.failed_events = _redact_failed(account, person.values, raw_ids)
        result.raw_key_samples = _purge_samples(account, strings)
        now = timezone.now()
        for hook in hooks("STRATA_PERSON_ERASED_HOOKS"):
            result.downstream += int(hook(account.pk, person.family, sorted(person.values), now)
                                     or 0)
    return result
