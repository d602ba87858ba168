"""django-q2 entry points of the profiles app: thin, they call services."""

from __future__ import annotations

from django.db.models import Exists, OuterRef

from cdp_site.models import Account
from profiles.calculated import attributes as calculated
from profiles.collection import partitions
from profiles.explorer import aggregate
from profiles.models import Field
from profiles.privacy import requests as privacy_requests
from profiles.privacy import retention
from profiles.processing import steps


def aggregate_streams(max_seconds: float = 50.0) -> int:
    """Catch up with the raw store (the `aggregate_streams --loop` process does this
    continuously; this scheduled run keeps usage counts moving when that process is absent).
    Bounded well below the cluster's timeout."""
    return aggregate.aggregate_streams(max_seconds=max_seconds).events


def ensure_partitions() -> list[str]:
    return partitions.ensure_partitions()


def drop_expired_raw_events() -> dict[str, int]:
    return partitions.drop_expired_partitions()


def forget_old_message_ids() -> int:
    return partitions.forget_old_message_ids()


def refresh_aged_values() -> int:
    """Drop field values older than their field's keep_days from profiles nobody touched."""
    accounts = Account.objects.filter(
        Exists(Field.objects.filter(account=OuterRef("pk"), keep_days__isnull=False)))
    return sum(steps.refresh_aged_values(pk) for pk in accounts.values_list("pk", flat=True))


def correct_calculated_attributes() -> int:
    """Recompute calculated attribute values whose window slid (every 15 minutes)."""
    return calculated.correct_all()


def backfill_calculated_attribute(attribute_id: int, revision: int) -> str:
    """A new or changed calculated attribute, computed from profile events."""
    return calculated.backfill(attribute_id, revision)


def run_privacy_request(request_id: int) -> str:
    """A data subject request (profiles.privacy.requests): its id only, never the value."""
    return privacy_requests.run_request(request_id)


def apply_profile_retention() -> int:
    """Daily: each account's profile retention (profiles.privacy.retention)."""
    return retention.apply_all()
