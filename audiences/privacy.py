"""What audiences hold about a person, for an access request (issue #14;
``settings.STRATA_PERSON_DATA_HOOKS``): their memberships now, and every entry and exit."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from audiences.models import AudienceMembership, MembershipChange

__all__ = ["person_data"]


def person_data(account_id: int, profile_ids: list[int], values: list[str]
                ) -> Iterator[tuple[str, Iterable[Any]]]:
    yield "audience_memberships", (
        AudienceMembership.objects.filter(account_id=account_id, profile_id__in=profile_ids)
        .order_by("audience__name", "id")
        .values("profile_id", "audience__name", "since").iterator(chunk_size=500))
    yield "audience_history", (
        MembershipChange.objects.filter(account_id=account_id, profile_id__in=profile_ids)
        .order_by("at", "id")
        .values("profile_id", "audience__name", "kind", "cause", "at")
        .iterator(chunk_size=500))
