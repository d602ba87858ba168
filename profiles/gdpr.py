"""GDPR profile delete (ROLES.md: Admin, Data Manager).

What a delete removes, in one transaction:

- the profile and every profile merged into it, with their identifiers (active and
  compacted), profile events and identity log;
- the raw events those profile events came from, and the processing warnings about them, so
  a rebuild from the raw store cannot bring the person back;
- the identifier value from other profiles' identity log entries that name one of these
  profiles (a conflict logged on someone else keeps its reason, not this person's value).

Apps downstream of profiles remove what they keep per profile through
``settings.STRATA_PROFILE_DELETED_HOOKS``: dotted paths of functions ``(account_id, profile_ids,
now)`` called in the deletion's transaction, before the profiles go (audiences removes the
memberships, records an exit per audience and moves sizes). A hook that fails fails the
deletion, and nothing is deleted.

What it records: an audit log entry ``profile.deleted`` with who, when, the profile ids and
how many rows went, and nothing that identifies the person (no identifier values).

What it does not do: suppress future collection. An event that arrives later with the same
identifiers (or was still waiting to be processed when the delete ran) makes a new profile,
as a new visit would; a permanent opt-out needs a suppression list, which processing would
have to consult before identity resolution.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from django.db import connection, transaction
from django.utils import timezone

from cdp_site import audit
from cdp_site.hooks import hooks
from profiles.models import EventWarning, Identifier, IdentityLog, Profile, ProfileEvent

if TYPE_CHECKING:
    from cdp_site.tenancy import Actor

__all__ = ["ACTION", "Deletion", "delete_profile"]

ACTION = "profile.deleted"

_DELETE_RAW = """
DELETE FROM profiles_rawevent
WHERE account_id = %(account)s AND id IN (
    SELECT raw_event_id FROM profiles_profileevent
    WHERE account_id = %(account)s AND profile_id = ANY(%(profiles)s::bigint[]))
"""


@dataclass
class Deletion:
    """What a GDPR delete removed."""

    profile_id: int
    merged_profile_ids: list[int]
    identifiers: dict[str, int] = field(default_factory=dict)  # field -> rows removed
    profile_events: int = 0
    raw_events: int = 0
    warnings: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {"profile_id": self.profile_id, "merged_profile_ids": self.merged_profile_ids,
                "identifiers": self.identifiers, "profile_events": self.profile_events,
                "raw_events": self.raw_events, "warnings": self.warnings}


def delete_profile(actor: Actor, profile: Profile, *, looked_up_by: str = "") -> Deletion:
    """Delete a (surviving) profile and everything of it (see the module docstring)."""
    account = actor.account
    if profile.account_id != account.pk:  # pragma: no cover - callers resolve in the account
        raise ValueError("the profile belongs to another account")
    with transaction.atomic():
        # Lock the rows first: a processing batch touching this person waits, then finds the
        # profile gone and is retried (its events then make a new profile).
        family = list(Profile.objects.for_account(account).select_for_update()
                      .filter(pk=profile.pk).values_list("id", flat=True))
        family += list(Profile.objects.for_account(account).select_for_update()
                       .filter(merged_into_id=profile.pk).order_by("id")
                       .values_list("id", flat=True))
        result = Deletion(profile_id=profile.pk, merged_profile_ids=family[1:])
        result.identifiers = dict(sorted(Counter(
            Identifier.objects.for_account(account).filter(profile_id__in=family)
            .values_list("field", flat=True)).items()))
        events = ProfileEvent.objects.for_account(account).filter(profile_id__in=family)
        result.warnings, _ = EventWarning.objects.for_account(account).filter(
            raw_event_id__in=events.values("raw_event_id")).delete()
        with connection.cursor() as cursor:
            cursor.execute(_DELETE_RAW, {"account": account.pk, "profiles": family})
            result.raw_events = max(cursor.rowcount, 0)
        IdentityLog.objects.for_account(account).filter(other_id__in=family).exclude(
            profile_id__in=family).update(value="")
        result.profile_events, _ = events.delete()
        now = timezone.now()
        for hook in hooks("STRATA_PROFILE_DELETED_HOOKS"):
            hook(account.pk, family, now)
        Profile.objects.for_account(account).filter(pk__in=family).delete()
        audit.record(account, actor, ACTION, profile, changes={
            **{k: v for k, v in result.as_dict().items() if k != "profile_id"},
            "looked_up_by": looked_up_by,
        })
    return result
