"""What experiences hold about a person (issue #14): assignments, impressions and conversions,
found by profile id or by visitor key (the targeting key is usually an identifier value, a
cookie or a user id). Read for an access request (``STRATA_PERSON_DATA_HOOKS``) and removed by
a delete (``STRATA_PERSON_ERASED_HOOKS``, in the delete's transaction)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any

from django.db.models import Q

from experiences.models import Assignment, Conversion, Impression

__all__ = ["person_data", "person_erased"]


def _by_person(profile_ids: list[int], values: list[str]) -> Q:
    return Q(profile_id__in=profile_ids) | Q(visitor__in=values)


def person_data(account_id: int, profile_ids: list[int], values: list[str]
                ) -> Iterator[tuple[str, Iterable[Any]]]:
    yield "experience_assignments", (
        Assignment.objects.filter(_by_person(profile_ids, values), account_id=account_id)
        .order_by("assigned_at", "id")
        .values("experience__name", "variant__key", "visitor", "phase", "reason",
                "assigned_at").iterator(chunk_size=500))
    yield "experience_impressions", (
        Impression.objects.filter(_by_person(profile_ids, values), account_id=account_id)
        .order_by("first_at", "id")
        .values("experience__name", "variant__key", "visitor", "first_at", "last_at",
                "count").iterator(chunk_size=500))
    yield "experience_conversions", (
        Conversion.objects.filter(account_id=account_id, visitor__in=values)
        .order_by("first_at", "id")
        .values("experience__name", "variant__key", "goal__name", "visitor", "first_at",
                "last_at", "count").iterator(chunk_size=500))


def person_erased(account_id: int, profile_ids: list[int], values: list[str],
                  now: datetime) -> int:
    """How many rows went."""
    gone = 0
    for model in (Assignment, Impression):
        n, _ = model.objects.filter(_by_person(profile_ids, values),
                                    account_id=account_id).delete()
        gone += n
    n, _ = Conversion.objects.filter(account_id=account_id, visitor__in=values).delete()
    return gone + n
