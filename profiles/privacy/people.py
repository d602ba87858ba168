"""The person a privacy request names: the surviving profiles an identifier value points at
(compared normalised, ``profiles.identifiers``), every identifier value they hold, and the raw
events that carry those values (processed or not)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from django.db.models import Q
from django.db.models.expressions import RawSQL

from profiles.identifiers import matching_values
from profiles.models import Identifier, Profile, ProfileEvent, RawEvent
from profiles.processing.identity import surviving_profile

if TYPE_CHECKING:
    from collections.abc import Iterable

    from django.db.models import QuerySet

    from cdp_site.models import Account

__all__ = ["Person", "find_person", "person_of_profiles", "raw_events_carrying"]


@dataclass
class Person:
    """Who a request names: surviving profiles (with those merged into them) and values."""

    profiles: list[Profile] = field(default_factory=list)
    family: list[int] = field(default_factory=list)  # the survivors and the merged-away ids
    values: set[str] = field(default_factory=set)  # every identifier value, as stored

    @property
    def found(self) -> bool:
        return bool(self.profiles)


def _matching_identifiers(account: Account, value: str, field_name: str) -> QuerySet:
    scoped = Identifier.objects.for_account(account)
    if field_name:
        scoped = scoped.filter(field=field_name)
    rows, condition = matching_values(scoped, value)
    return rows.filter(condition)


def find_person(account: Account, value: str, field_name: str = "") -> Person:
    """The person an identifier value names (found through active or compacted identifiers)."""
    ids = set(_matching_identifiers(account, value, field_name)
              .values_list("profile_id", flat=True))
    return person_of_profiles(account, ids, {value.strip()})


def person_of_profiles(account: Account, ids: Iterable[int], values: set[str] | None = None
                       ) -> Person:
    """The person made of these profiles (ids of merged-away ones lead to their survivor)."""
    person = Person(values=set(values or ()))
    survivors: dict[int, Profile] = {}
    for pid in sorted(ids):
        profile = surviving_profile(account, pid)
        if profile is not None:
            survivors[profile.pk] = profile
    person.profiles = [survivors[pk] for pk in sorted(survivors)]
    family = set(survivors)
    if family:
        family |= set(Profile.objects.for_account(account)
                      .filter(merged_into_id__in=list(survivors)).values_list("id", flat=True))
        person.values |= set(Identifier.objects.for_account(account)
                             .filter(profile_id__in=family).values_list("value", flat=True))
    person.family = sorted(family)
    return person


def _like(value: str) -> str:
    """A LIKE pattern matching the value as a JSON string anywhere in a message's text."""
    quoted = json.dumps(value, ensure_ascii=False)
    escaped = quoted.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


_CARRYING = """SELECT id FROM profiles_rawevent WHERE account_id = %s AND (
    user_id = ANY(%s) OR anonymous_id = ANY(%s)
    OR message::text LIKE ANY(%s) OR message::text ILIKE ANY(%s))"""


def raw_events_carrying(account: Account, person: Person) -> QuerySet:
    """Raw events, in every partition, that the person's profile events came from or that
    carry one of their identifier values as a whole JSON string (emails case-insensitively),
    including events still waiting to be processed."""
    values = sorted(person.values)
    exact = [_like(v) for v in values if "@" not in v]
    folded = [_like(v) for v in values if "@" in v]
    # a constant statement, every value bound as a parameter
    carrying = RawSQL(_CARRYING, [account.pk, values, values, exact, folded])  # noqa: S611
    condition = Q(pk__in=carrying)
    if person.family:
        condition |= Q(pk__in=ProfileEvent.objects.for_account(account)
                       .filter(profile_id__in=person.family).values("raw_event_id"))
    return RawEvent.objects.for_account(account).filter(condition)
