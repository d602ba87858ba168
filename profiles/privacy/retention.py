"""Retention of profiles (issue #14, item 5), per account (``ProfileRetention``): profile
events older than ``event_days`` go; anonymous profiles (every identifier on a cookie field)
not seen for ``anonymous_days`` go with everything of theirs, through ``profiles.gdpr`` and
the same hooks as a delete (memberships, experience assignments). A daily task runs it
(``profiles.tasks.apply_profile_retention``); ``preview`` says what the next run would remove.

The raw store keeps its own retention (whole months, ``profiles.collection.partitions``): a
rebuild within it brings old profile events back, as it would any event."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Exists, OuterRef, QuerySet
from django.utils import timezone

from cdp_site.hooks import hooks
from cdp_site.tenancy import Actor
from profiles import gdpr
from profiles.models import Identifier, Profile, ProfileEvent, ProfileRetention

__all__ = ["NEXT_RUN_HOUR", "Preview", "apply_all", "apply_retention", "next_run", "preview"]

DEFAULT_ANONYMOUS_FIELDS = ["_uid"]
NEXT_RUN_HOUR = 3  # the daily schedule runs at 03:00 UTC
CHUNK = 5000


@dataclass
class Preview:
    profile_events: int
    anonymous_profiles: int
    next_run: datetime

    def as_dict(self) -> dict[str, Any]:
        return {"profile_events": self.profile_events,
                "anonymous_profiles": self.anonymous_profiles, "next_run": self.next_run}


def _old_events(policy: ProfileRetention, now: datetime) -> QuerySet:
    if policy.event_days is None:
        return ProfileEvent.objects.none()
    return ProfileEvent.objects.filter(account_id=policy.account_id,
                                       at__lt=now - timedelta(days=policy.event_days))


def _stale_anonymous(policy: ProfileRetention, now: datetime) -> QuerySet:
    if policy.anonymous_days is None:
        return Profile.objects.none()
    cookies = policy.anonymous_fields or DEFAULT_ANONYMOUS_FIELDS
    known = Identifier.objects.filter(profile_id=OuterRef("pk")).exclude(field__in=cookies)
    return (Profile.objects.filter(account_id=policy.account_id, merged_into__isnull=True,
                                   last_seen__lt=now - timedelta(days=policy.anonymous_days))
            .filter(~Exists(known)).order_by("id"))


def next_run(now: datetime) -> datetime:
    today = now.replace(hour=NEXT_RUN_HOUR, minute=0, second=0, microsecond=0)
    return today if today > now else today + timedelta(days=1)


def preview(policy: ProfileRetention, now: datetime | None = None) -> Preview:
    """What a run now would remove, and when the next one runs."""
    now = now or timezone.now()
    return Preview(_old_events(policy, now).count(), _stale_anonymous(policy, now).count(),
                   next_run(now))


def apply_retention(policy: ProfileRetention, now: datetime | None = None) -> dict[str, int]:
    """Remove what the policy no longer keeps; what went."""
    now = now or timezone.now()
    events = 0
    while True:
        ids = list(_old_events(policy, now).values_list("id", flat=True)[:CHUNK])
        if not ids:
            break
        events += ProfileEvent.objects.filter(pk__in=ids).delete()[0]
    actor = Actor(account=policy.account)
    profiles = 0
    for profile in _stale_anonymous(policy, now).iterator(chunk_size=500):
        deletion = gdpr.delete_profile(actor, profile, looked_up_by="retention")
        family = [deletion.profile_id, *deletion.merged_profile_ids]
        for hook in hooks("STRATA_PERSON_ERASED_HOOKS"):
            hook(policy.account_id, family, [], now)
        profiles += 1
    result = {"profile_events": events, "anonymous_profiles": profiles}
    ProfileRetention.objects.filter(pk=policy.pk).update(last_run_at=now, last_result=result)
    return result


def apply_all(now: datetime | None = None) -> int:
    """Every account with a policy (the daily task); how many accounts ran."""
    ran = 0
    for policy in ProfileRetention.objects.select_related("account").order_by("account_id"):
        apply_retention(policy, now)
        ran += 1
    return ran
