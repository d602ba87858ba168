"""Data subject requests (issue #14): made through the API, the admin or the privacy page, run
in the background by django-q2 (``profiles.tasks.run_privacy_request``, which gets the
request's id and nothing else), polled by id.

Lifecycle: ``received`` -> ``running`` -> ``done`` | ``failed``. A worker claims a request
with one UPDATE, so a request runs once even if its task is delivered twice. The identifier
value is kept on the row only until the request ends (done or failed); the result holds
counts and ids, never a value. What each kind does is one function in ``KINDS``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from django.db import transaction
from django.utils import timezone

from cdp_site import audit
from cdp_site.tenancy import Actor
from profiles.identifiers import HASH_MAX_INPUT, identifier_hash, normalize_identifier
from profiles.masking import mask_text
from profiles.models import Field, PrivacyRequest
from profiles.privacy.erase import erase_person, subject_lock
from profiles.privacy.people import find_person
from profiles.privacy.suppress import suppress_values, unsuppress_value

__all__ = ["ACTION", "KINDS", "PrivacyRequestError", "create_request", "run_request"]

logger = logging.getLogger(__name__)
ACTION = "privacy.requested"
Kind = PrivacyRequest.Kind
State = PrivacyRequest.State


class PrivacyRequestError(ValueError):
    """A request refused before it is recorded: ``code`` and ``message``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


def create_request(actor: Actor, kind: Any, value: Any, field: Any = "", *,
                   suppress: Any = True) -> PrivacyRequest:
    """Record a request and queue it; bad input is refused with nothing recorded."""
    if kind not in Kind.values:
        raise PrivacyRequestError("invalid_kind", f"kind must be one of {', '.join(Kind.values)}.")
    if not isinstance(value, str) or not value.strip():
        raise PrivacyRequestError("invalid_value", "value must be a non-empty identifier value.")
    if len(value) > HASH_MAX_INPUT or "\x00" in value:
        raise PrivacyRequestError(
            "invalid_value", f"value must be at most {HASH_MAX_INPUT} characters, without NUL.")
    field = field or ""
    if not isinstance(field, str) or (field and not Field.objects.for_account(actor.account)
                                      .filter(name=field, is_identifier=True).exists()):
        raise PrivacyRequestError("unknown_field", "field must name an identifier field.")
    if not isinstance(suppress, bool):
        raise PrivacyRequestError("invalid_suppress", "suppress must be true or false.")
    with transaction.atomic():
        request = PrivacyRequest.objects.create(
            account=actor.account, kind=kind, field=field, value=value.strip(),
            value_hint=mask_text(normalize_identifier(value))[:64], suppress=suppress,
            requested_by=actor.user if actor.user is not None and actor.user.pk else None,
            requested_by_label=actor.label[:200])
        audit.record(actor.account, actor, ACTION, request,
                     changes={"kind": kind, "field": field, "suppress": suppress})
        pk = request.pk
        transaction.on_commit(lambda: _enqueue(pk))
    return request


def _enqueue(pk: int) -> None:
    from django_q.tasks import async_task

    async_task("profiles.tasks.run_privacy_request", pk, task_name=f"privacy-request-{pk}")


# --------------------------------------------------------------------------- the kinds

Runner = Callable[[Actor, PrivacyRequest, str], dict[str, Any]]


def _access(actor: Actor, request: PrivacyRequest, subject: str) -> dict[str, Any]:
    person = find_person(actor.account, request.value, request.field)
    request.profile_id = person.profiles[0].pk if person.profiles else None
    return {"found": person.found, "profile_ids": [p.pk for p in person.profiles],
            "profiles": len(person.family),
            "message": "" if person.found else "No profile has this identifier."}


def _delete(actor: Actor, request: PrivacyRequest, subject: str) -> dict[str, Any]:
    erasure = erase_person(actor, request.value, request.field, subject,
                           suppress=request.suppress, request=request)
    result = erasure.as_dict()
    if not erasure.found:
        result["message"] = "No profile has this identifier; nothing of a profile was deleted."
    return result


def _suppress(actor: Actor, request: PrivacyRequest, subject: str) -> dict[str, Any]:
    with transaction.atomic():
        subject_lock(actor.account, subject)
        person = find_person(actor.account, request.value, request.field)
        added = suppress_values(actor.account, person.values, subject, request)
    return {"found": person.found, "suppressed": added}


def _unsuppress(actor: Actor, request: PrivacyRequest, subject: str) -> dict[str, Any]:
    removed = unsuppress_value(actor.account, request.value)
    return {"unsuppressed": removed,
            "message": "" if removed else "This identifier was not suppressed."}


KINDS: dict[str, Runner] = {
    Kind.ACCESS: _access, Kind.DELETE: _delete, Kind.SUPPRESS: _suppress,
    Kind.UNSUPPRESS: _unsuppress,
}


def run_request(pk: int) -> str:
    """Run a received request (the task's body); its final state."""
    claimed = PrivacyRequest.objects.filter(pk=pk, state=State.RECEIVED).update(
        state=State.RUNNING, started_at=timezone.now())
    if not claimed:
        return "not received"
    request = PrivacyRequest.objects.select_related("account", "requested_by").get(pk=pk)
    actor = Actor(account=request.account, user=request.requested_by)
    subject = identifier_hash(request.account_id, request.value)
    try:
        request.result = KINDS[request.kind](actor, request, subject)
        request.state = State.DONE
    except Exception as exc:  # recorded on the request, without the value or its message
        logger.error("privacy request %s failed: %s", pk, type(exc).__name__)
        request.state, request.error = State.FAILED, f"failed: {type(exc).__name__}"
    request.value, request.finished_at = "", timezone.now()
    request.save(update_fields=["state", "result", "error", "value", "profile_id",
                                "finished_at"])
    return str(request.state)
