"""The access document (issue #14): one JSON document of everything held about the person an
access request found, written as it is read, so a person with many events costs bounded
memory (rows come from server-side cursors in chunks and leave in ~64 KB pieces).

Sections: the profiles (the survivors and those merged into them), identifiers, consent,
identity log, calculated attribute values, profile events, the raw events that carry their
identifiers, whether they are suppressed, and what apps above profiles keep
(``settings.STRATA_PERSON_DATA_HOOKS``: functions ``(account_id, profile_ids, values)`` giving
``(section name, rows)`` pairs: audience memberships and their history, experience
assignments, impressions and conversions, connector deliveries).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from django.http import StreamingHttpResponse

from cdp_site.hooks import hooks
from profiles.identifiers import identifier_hash
from profiles.models import (
    AttributeValue,
    Identifier,
    IdentityLog,
    Profile,
    ProfileConsent,
    ProfileEvent,
    Suppression,
)
from profiles.privacy.people import Person, person_of_profiles, raw_events_carrying

if TYPE_CHECKING:
    from cdp_site.models import Account
    from profiles.models import PrivacyRequest

__all__ = ["access_document", "document_response"]

_CHUNK = 500
_FLUSH = 64 * 1024


def _dump(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str, separators=(",", ":"))


def _rows(queryset: Any, *fields: str) -> Iterator[dict[str, Any]]:
    return queryset.values(*fields).iterator(chunk_size=_CHUNK)


def _sections(account: Account, person: Person) -> Iterator[tuple[str, Iterable[Any]]]:
    family = person.family
    yield "profiles", _rows(Profile.objects.for_account(account).filter(pk__in=family)
                            .order_by("id"), "id", "merged_into_id", "field_values",
                            "first_seen", "last_seen", "event_count", "created_at")
    yield "identifiers", _rows(Identifier.objects.for_account(account)
                               .filter(profile_id__in=family).order_by("id"),
                               "profile_id", "field", "value", "active", "first_seen",
                               "last_seen")
    yield "consent", _rows(ProfileConsent.objects.for_account(account)
                           .filter(profile_id__in=family).order_by("purpose", "id"),
                           "profile_id", "purpose", "granted", "at")
    yield "identity_log", _rows(IdentityLog.objects.for_account(account)
                                .filter(profile_id__in=family).order_by("id"),
                                "profile_id", "kind", "other_id", "field", "value", "reason",
                                "created_at")
    yield "calculated_attributes", _rows(AttributeValue.objects.for_account(account)
                                         .filter(profile_id__in=family).order_by("id"),
                                         "profile_id", "name", "value", "updated_at")
    yield "profile_events", _rows(ProfileEvent.objects.for_account(account)
                                  .filter(profile_id__in=family).order_by("at", "id"),
                                  "profile_id", "raw_event_id", "stream", "event", "at",
                                  "properties")
    yield "raw_events", _rows(raw_events_carrying(account, person).order_by("id"),
                              "id", "stream", "type", "event", "received_at", "event_at",
                              "source", "message")
    hashes = [identifier_hash(account.pk, value) for value in person.values]
    yield "suppressed", [Suppression.objects.for_account(account)
                         .filter(value_hash__in=hashes).exists()]
    for hook in hooks("STRATA_PERSON_DATA_HOOKS"):
        yield from hook(account.pk, family, sorted(person.values))


def access_document(account: Account, request: PrivacyRequest, person: Person
                    ) -> Iterator[bytes]:
    """The document, in pieces of about 64 KB."""
    buffer: list[str] = []
    size = 0

    def put(text: str) -> Iterator[bytes]:
        nonlocal size
        buffer.append(text)
        size += len(text)
        if size >= _FLUSH:
            yield "".join(buffer).encode()
            buffer.clear()
            size = 0

    head = {"request": request.pk, "kind": request.kind, "made_at": request.created_at,
            "found": person.found}
    yield from put(_dump(head)[:-1])
    for name, rows in _sections(account, person):
        if name == "suppressed":
            yield from put(f',"suppressed":{_dump(next(iter(rows)))}')
            continue
        yield from put(f",{_dump(name)}:[")
        for i, row in enumerate(rows):
            yield from put(("," if i else "") + _dump(row))
        yield from put("]")
    yield from put("}")
    if buffer:
        yield "".join(buffer).encode()


def document_response(account: Account, request: PrivacyRequest) -> StreamingHttpResponse:
    """The document of a done access request, as a streamed download."""
    person = person_of_profiles(account, request.result.get("profile_ids", []))
    response = StreamingHttpResponse(access_document(account, request, person),
                                     content_type="application/json")
    response["Content-Disposition"] = f'attachment; filename="access-{request.pk}.json"'
    return response
