"""Profile writes through the profile API (issue #14, item 4): ``PATCH
/api/v1/profiles/{field}/{value}`` stores the attributes as an event on the ``api`` stream,
which processing maps like any other (every field from its own name: ``profiles.schema.
compiled``), so merge operators and identity apply, and a rebuild replays the change. The
event is stored before the answer; the profile changes when it is processed.

Audited as ``profile.updated`` with the field names, never their values."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.db import transaction
from django.utils import timezone

from cdp_site import audit
from profiles.collection.messages import IncomingEvent, new_message_id
from profiles.collection.store import store_events
from profiles.schema.compiled import API_STREAM, live_schema

if TYPE_CHECKING:
    from cdp_site.tenancy import Actor
    from profiles.models import Profile

__all__ = ["ACTION", "ProfileWriteError", "write_attributes"]

ACTION = "profile.updated"
MAX_ATTRIBUTES = 100


class ProfileWriteError(ValueError):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


def write_attributes(actor: Actor, profile: Profile, field: str, value: str,
                     attributes: Any) -> str:
    """Queue the attributes for the profile the identifier names; the event's message id."""
    if not isinstance(attributes, dict) or not attributes:
        raise ProfileWriteError("invalid_attributes",
                                "attributes must be an object of field names and values.")
    if len(attributes) > MAX_ATTRIBUTES:
        raise ProfileWriteError("invalid_attributes",
                                f"At most {MAX_ATTRIBUTES} attributes in one write.")
    schema = live_schema(actor.account)
    fields = schema.fields if schema is not None else {}
    unknown = sorted(name for name in attributes if name not in fields)
    if unknown:
        raise ProfileWriteError("unknown_field",
                                f"Not fields of the live schema: {', '.join(unknown)}.")
    if field in attributes:
        raise ProfileWriteError("invalid_attributes",
                                "The identifier the profile is named by is not rewritten here.")
    now = timezone.now()
    message_id = new_message_id()
    event = IncomingEvent(message={**attributes, field: value}, message_id=message_id,
                          type="api", event="profile_update", event_at=now)
    with transaction.atomic():
        store_events(actor.account, API_STREAM, [event], source="api", received_at=now)
        audit.record(actor.account, actor, ACTION, profile,
                     changes={"fields": sorted(attributes), "looked_up_by": field})
    return message_id
