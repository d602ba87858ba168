"""Builders for processing tests: a schema, events stored through collect, a run, and profiles
described by their identifiers and values (ids differ between runs; people do not)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from cdp_site.models import Account
from profiles.collection.messages import IncomingEvent
from profiles.collection.store import store_events
from profiles.models import Identifier, Profile
from profiles.processing.pipeline import process_pending
from profiles.schema.drafts import save_field, save_mapping
from profiles.schema.versions import publish

_counter = iter(range(1, 10**9))
T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)


def identity_schema(account: Account, *, stream: str = "web", extra: bool = True) -> None:
    """email (rank 1, capacity 1) and the `_uid` cookie (rank 2, capacity 50), plus a
    `page` field (latest) and `pages` ([]string merge), all mapped on one stream; published."""
    fields = [
        save_field(account, name="email", type="string", merge_operator="latest",
                   is_identifier=True, identifier_rank=1, identifier_capacity=1,
                   is_pii=True),
        save_field(account, name="_uid", type="[]string", merge_operator="merge",
                   capacity=50, is_identifier=True, identifier_rank=2,
                   identifier_capacity=50),
    ]
    save_mapping(account, field=fields[0], stream=stream, expression="email")
    save_mapping(account, field=fields[1], stream=stream, expression="`_uid`")
    if extra:
        page = save_field(account, name="page", type="string", merge_operator="latest")
        pages = save_field(account, name="pages", type="[]string",
                           merge_operator="merge")
        save_mapping(account, field=page, stream=stream, expression="page")
        save_mapping(account, field=pages, stream=stream, expression="page")
    publish(account)


def event(**message: Any) -> dict[str, Any]:
    return message


def send(account: Account, *messages: dict[str, Any], stream: str = "web",
         at: datetime | None = None) -> int:
    """Store messages (one statement, in order); event times one second apart from ``at``."""
    start = at or T0
    events = []
    for i, message in enumerate(messages):
        message_id = f"m-{next(_counter)}"
        events.append(IncomingEvent(message=dict(message), message_id=message_id,
                                    type=str(message.get("type", "")),
                                    event=str(message.get("event", "")),
                                    event_at=start + timedelta(seconds=i)))
    return store_events(account, stream, events, source="test", received_at=datetime.now(UTC))


def run(account: Account, **kwargs: Any) -> int:
    return process_pending(account_id=account.pk, **kwargs)


def live_profiles(account: Account) -> list[Profile]:
    return list(Profile.objects.for_account(account).filter(merged_into__isnull=True)
                .order_by("id"))


def identifiers(profile: Profile) -> set[str]:
    """A profile's active identifier values (field names left out: values are unique here)."""
    return set(Identifier.objects.filter(profile=profile, active=True)
               .values_list("value", flat=True))


def people(account: Account) -> list[tuple[frozenset[str], str]]:
    """Every live profile as (its identifier values, its values and counters as JSON text),
    sorted: what two runs must agree on whatever the ids."""
    import json

    out = []
    for p in live_profiles(account):
        summary = {"values": p.field_values, "events": p.event_count,
                   "conflicts": p.conflicts, "compactions": p.compactions,
                   "identifiers": p.identifier_count,
                   "first": p.first_seen.isoformat(), "last": p.last_seen.isoformat()}
        out.append((frozenset(identifiers(p)), json.dumps(summary, sort_keys=True)))
    return sorted(out, key=lambda item: (sorted(item[0]), item[1]))


def profile_with(account: Account, value: str) -> Profile:
    ident = Identifier.objects.for_account(account).get(value=value, active=True)
    return ident.profile
