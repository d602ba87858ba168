"""The Contentstack Personalize Edge API (PROTOCOLS.md §4; docs/personalize.md), as
``@contentstack/personalize-edge-sdk`` calls it after ``Personalize.setEdgeApiUrl(
"https://strata.example.com/personalize")``.

- ``X-Project-Uid`` is the account id (``Account.aid``, the id the Lytics tag URLs carry);
  an unknown one is ``404 {"error": "personalize.MANIFEST.PROJECT_NOT_FOUND"}`` (what the SDK
  looks for), a disabled account ``403``.
- ``X-CS-Personalize-User-Uid`` is the visitor: the decisions' targeting key, and the
  ``anonymousId`` of the events stored for it (so, with the Lytics schema, a ``_uid``
  identifier of the visitor's profile). The manifest mints one for a new visitor.
- Bodies are JSON whatever the ``Content-Type`` (the SDK sends ``text/plain``), gzip accepted.

Attributes and custom events are stored as Segment messages through the collection core
(``profiles.collection.store.accept``: quota, tracking plans, the raw store, failed events), so they
are processed like any event and never lost; impressions go to ``experiences.tracking``.
Every refused request is ``{"code", "message"}`` with a 4xx status and changes nothing (the
refused body is kept as a failed event, as collection keeps them).
"""

from __future__ import annotations

import re
import uuid
from collections import Counter
from collections.abc import Callable
from typing import Any

import orjson
from django.conf import settings
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt

from cdp_site.models import Account
from experiences import tracking
from experiences.decide import TARGETING_MATCH, Decision, decide
from profiles.collection import segment
from profiles.collection.intake import IntakeError, parse_json, read_body
from profiles.collection.messages import Failure, IncomingEvent, QuotaExceeded
from profiles.collection.store import accept, record_failures

SOURCE = "personalize"
PROJECT_NOT_FOUND = "personalize.MANIFEST.PROJECT_NOT_FOUND"
MAX_BODY_BYTES = 64 * 1024
MAX_EVENTS = 100
MAX_ATTRIBUTES = 100
MAX_UID = 300
MAX_HEADER_JSON = 8 * 1024
MAX_URL = 2048
JSON = "application/json"
_UID = re.compile(r"[^\x00-\x1f\x7f]{1,300}")
_FIELD = re.compile(r"[A-Za-z_][A-Za-z0-9_.]{0,99}")
_SUCCESS = b'{"success":true}'


def personalize_stream() -> str:
    """The stream attributes and events are stored in (the Lytics schema maps ``default``)."""
    return getattr(settings, "STRATA_PERSONALIZE_STREAM", "default")


class Refused(Exception):
    """A request refused: status, code, message (and the Personalize error name for a 404)."""

    def __init__(self, status: int, code: str, message: str, error: str = "", *,
                 kept: bool = False) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.error = status, code, message, error
        self.kept = kept  # already kept as a failed event


def _json(data: Any, status: int = 200) -> HttpResponse:
    response = HttpResponse(data if isinstance(data, bytes) else orjson.dumps(data),
                            content_type=JSON, status=status)
    response["Cache-Control"] = "no-store"
    return response


def _refusal(refused: Refused) -> HttpResponse:
    payload = {"code": refused.code, "message": refused.message}
    if refused.error:
        payload["error"] = refused.error
    return _json(payload, refused.status)


# --------------------------------------------------------------------------- request parts


def _project(request: HttpRequest) -> Account:
    aid = request.META.get("HTTP_X_PROJECT_UID", "").strip()
    account = Account.objects.filter(aid=aid).only("pk", "aid", "enabled", "monthly_event_quota"
                                                   ).first() if aid else None
    if account is None:
        message = (f"No project has the uid {aid[:64]!r}." if aid
                   else "No project: send the X-Project-Uid header (the account id).")
        raise Refused(404, "project_not_found", message, PROJECT_NOT_FOUND)
    if not account.enabled:
        raise Refused(403, "account_disabled", "The project's account is disabled.")
    return account


def _valid_uid(value: Any, name: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise Refused(400, "missing_user_uid", f"No {name}: the user uid is required.")
    if not _UID.fullmatch(value):
        raise Refused(400, "invalid_user_uid",
                      f"{name} must be 1 to {MAX_UID} characters without control characters.")
    return value


def _user_uid(request: HttpRequest) -> str:
    return _valid_uid(request.META.get("HTTP_X_CS_PERSONALIZE_USER_UID", ""),
                      "X-CS-Personalize-User-Uid")


def _live_attributes(request: HttpRequest) -> dict[str, Any]:
    header = request.META.get("HTTP_X_LIVE_ATTRIBUTES", "")
    if not header:
        return {}
    problem = "X-Live-Attributes must be a JSON object"
    if len(header) > MAX_HEADER_JSON:
        raise Refused(400, "invalid_live_attributes", f"{problem} of at most 8 KB.")
    try:
        value = orjson.loads(header)
    except orjson.JSONDecodeError:
        raise Refused(400, "invalid_live_attributes", f"{problem}; it is not JSON.") from None
    if not isinstance(value, dict) or len(value) > MAX_ATTRIBUTES:
        raise Refused(400, "invalid_live_attributes",
                      f"{problem} of at most {MAX_ATTRIBUTES} entries.")
    return value


def _lytics_identifier(request: HttpRequest) -> dict[str, str]:
    """``X-Lytics-Id-Field`` / ``-Value`` (the SDK sends the ``seerid`` cookie as ``_uid``):
    the visitor's profile is looked up by it first."""
    name = request.META.get("HTTP_X_LYTICS_ID_FIELD", "")
    value = request.META.get("HTTP_X_LYTICS_ID_VALUE", "")
    if not name and not value:
        return {}
    if not _FIELD.fullmatch(name) or not value or len(value.encode()) > 256:
        raise Refused(400, "invalid_lytics_id",
                      "X-Lytics-Id-Field must be a field name and X-Lytics-Id-Value a value of "
                      "1 to 256 bytes; send both or neither.")
    return {name: value}


def _page_url(request: HttpRequest) -> str:
    url = request.META.get("HTTP_X_PAGE_URL", "")
    if len(url) > MAX_URL:
        raise Refused(400, "invalid_page_url", f"X-Page-Url is over {MAX_URL} characters.")
    return url


# The body as read, kept on the request (which does not declare it) for _keep_refused.
_RAW_BODY_ATTR = "strata_raw"


def _body(request: HttpRequest, check: Callable[[Any], Any]) -> Any:
    try:
        raw = read_body(request, MAX_BODY_BYTES)
    except IntakeError as exc:
        setattr(request, _RAW_BODY_ATTR, exc.body)
        raise Refused(exc.status, exc.code, exc.message) from None
    setattr(request, _RAW_BODY_ATTR, raw)
    try:
        return check(parse_json(raw))
    except IntakeError as exc:
        raise Refused(exc.status, exc.code, exc.message) from None


def _context(request: HttpRequest) -> dict[str, Any]:
    """What the stored messages say about where they came from."""
    context: dict[str, Any] = {"library": {"name": "personalize-edge-api", "version": "1"}}
    agent = request.META.get("HTTP_X_USER_AGENT", "")
    if agent:
        context["library"] = {"name": agent.split("/")[0][:100],
                              "version": agent.rpartition("/")[2][:40]}
    url = request.META.get("HTTP_X_PAGE_URL", "")
    if url and len(url) <= MAX_URL:
        context["page"] = {"url": url}
    if request.META.get("HTTP_USER_AGENT"):
        context["userAgent"] = request.META["HTTP_USER_AGENT"][:1000]
    return context


def _store(account: Account, messages: list[dict[str, Any]], failures: list[Failure],
           received_at: Any) -> list[Failure]:
    """Check the messages as Segment messages and store them through the collection core;
    the failures (refused items and messages) are kept as failed events. Raises
    QuotaExceeded (nothing is stored)."""
    events: list[IncomingEvent] = []
    failures = list(failures)
    for message in messages:
        result = segment.parse_message(message, received_at)
        if isinstance(result, Failure):
            failures.append(result)
        else:
            events.append(result)
    accept(account, personalize_stream(), events, failures, source=SOURCE,
           received_at=received_at)
    return failures


def _keep_refused(request: HttpRequest, refused: Refused, account: Account | None,
                  received_at: Any) -> None:
    """A refused body is kept as a failed event (as the collection paths keep theirs)."""
    if refused.kept or account is None or request.method == "GET":
        return
    body = getattr(request, _RAW_BODY_ATTR, b"")
    record_failures([Failure(code=refused.code, reason=refused.message,
                             body=body[:16384].decode("utf-8", "replace"))],
                    account=account, stream=personalize_stream(), source=SOURCE,
                    received_at=received_at)


def _endpoint(method: str) -> Callable[[Callable[..., HttpResponse]], Callable[..., HttpResponse]]:
    """A Personalize endpoint: the method, the project, refusals and the quota answered the
    same way everywhere."""

    def wrap(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @csrf_exempt
        def endpoint(request: HttpRequest) -> HttpResponse:
            received_at = timezone.now()
            if request.method != method:
                response = _json({"code": "method_not_allowed", "message": f"Use {method}."},
                                 405)
                response["Allow"] = method
                return response
            account = None
            try:
                account = _project(request)
                return view(request, account, received_at)
            except Refused as refused:
                _keep_refused(request, refused, account, received_at)
                return _refusal(refused)
            except QuotaExceeded as exc:
                response = _json({"code": "quota_exceeded", "message": str(exc)}, 429)
                response["Retry-After"] = str(int(exc.retry_after))
                return response

        endpoint.__doc__ = view.__doc__
        endpoint.__name__ = view.__name__
        return endpoint

    return wrap


# --------------------------------------------------------------------------- the endpoints


def active_variant(decision: Decision) -> str | None:
    """The manifest's ``activeVariantShortUid``: the variant a visitor in the experiment was
    given, the segment variant their audience chose, or a completed experience's winner;
    ``null`` (show the base content) for everyone else."""
    if decision.variant_uid is None:
        return None
    if decision.in_experiment or decision.reason == TARGETING_MATCH \
            or decision.detail == "rollout":
        return decision.variant_uid
    return None


@_endpoint("GET")
def manifest(request: HttpRequest, account: Account, received_at: Any) -> HttpResponse:
    """``GET /personalize/manifest``: ``{"experiences": [{"shortUid",
    "activeVariantShortUid"}]}`` and the ``X-CS-Personalize-User-Uid`` header (minted for a
    new visitor). ``tags[]`` are accepted and ignored (Strata experiences have no tags)."""
    given = request.META.get("HTTP_X_CS_PERSONALIZE_USER_UID", "")
    uid = _valid_uid(given, "X-CS-Personalize-User-Uid") if given else str(uuid.uuid4())
    attributes = _live_attributes(request)
    identifiers = _lytics_identifier(request)
    url = _page_url(request)
    if url:
        attributes.setdefault("page_url", url)
    result = decide(account.pk, uid, identifiers=identifiers, attributes=attributes)
    response = _json({"experiences": [
        {"shortUid": d.experience_uid, "activeVariantShortUid": active_variant(d)}
        for d in result.decisions]})
    response["X-CS-Personalize-User-Uid"] = uid
    return response


def _attributes_body(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict) or len(body) > MAX_ATTRIBUTES:
        raise IntakeError(400, "invalid_body", "The body must be a JSON object of at most "
                                               f"{MAX_ATTRIBUTES} user attributes.")
    return body


@_endpoint("PATCH")
def user_attributes(request: HttpRequest, account: Account, received_at: Any) -> HttpResponse:
    """``PATCH /personalize/user-attributes`` ``{"attr": value, ...}``: stored as an
    ``identify`` message of the user (``traits``), processed like any event."""
    uid = _user_uid(request)
    attributes = _body(request, _attributes_body)
    failures = _store(account, [{"type": "identify", "anonymousId": uid, "traits": attributes,
                                 "context": _context(request)}], [], received_at)
    if failures:
        raise Refused(400, failures[0].code, failures[0].reason, kept=True)
    return _json(_SUCCESS)


def _events_body(body: Any) -> list[Any]:
    if not isinstance(body, list) or not 1 <= len(body) <= MAX_EVENTS:
        raise IntakeError(400, "invalid_body",
                          f"The body must be a JSON array of 1 to {MAX_EVENTS} events.")
    return body


def _event_problem(item: Any) -> str:
    if not isinstance(item, dict):
        return "An event must be a JSON object."
    kind = item.get("type")
    if kind == "IMPRESSION":
        if not all(isinstance(item.get(k), str) and item[k]
                   for k in ("experienceShortUid", "variantShortUid")):
            return "An IMPRESSION needs experienceShortUid and variantShortUid."
        return ""
    if kind == "EVENT":
        key = item.get("eventKey")
        if not isinstance(key, str) or not key.strip() or len(key) > 200:
            return "An EVENT needs an eventKey of 1 to 200 characters."
        return ""
    return "type must be IMPRESSION or EVENT."


@_endpoint("POST")
def events(request: HttpRequest, account: Account, received_at: Any) -> HttpResponse:
    """``POST /personalize/events`` ``[{"type": "IMPRESSION", "experienceShortUid",
    "variantShortUid"}, {"type": "EVENT", "eventKey"}]``: impressions are recorded
    (``experiences.tracking``), events stored as ``track`` messages named by their key (so
    goals see them). An invalid item is refused alone (a failed event), the rest accepted."""
    uid = _user_uid(request)
    items = _body(request, _events_body)
    failures: list[Failure] = []
    impressions: list[tracking.ImpressionIn] = []
    messages: list[dict[str, Any]] = []
    context = _context(request)
    for position, item in enumerate(items, 1):
        problem = _event_problem(item)
        if problem:
            failures.append(Failure(code="invalid_event", line=position,
                                    reason=f"Event {position}: {problem}",
                                    body=segment.failure_body(item)))
        elif item["type"] == "IMPRESSION":
            impressions.append(tracking.ImpressionIn(
                item["experienceShortUid"], item["variantShortUid"], uid, received_at))
        else:
            messages.append({"type": "track", "event": item["eventKey"], "anonymousId": uid,
                             "properties": {}, "context": context})
    if failures and len(failures) == len(items):
        raise Refused(400, failures[0].code, failures[0].reason)
    with transaction.atomic():
        failures = _store(account, messages, failures, received_at)
        outcomes = tracking.record_impressions(account.pk, impressions) if impressions else []
    payload: dict[str, Any] = {"success": True}
    if outcomes:
        payload["impressions"] = dict(Counter(outcomes))
    if failures:
        payload["rejected"] = [{"position": f.line, "code": f.code, "message": f.reason}
                               for f in failures]
    return _json(payload)


def _merge_body(body: Any) -> tuple[str, str]:
    if not isinstance(body, dict):
        raise IntakeError(400, "invalid_body",
                          'The body must be {"sourceUserUid": …, "targetUserUid": …}.')
    try:
        return (_valid_uid(body.get("sourceUserUid"), "sourceUserUid"),
                _valid_uid(body.get("targetUserUid"), "targetUserUid"))
    except Refused as refused:
        raise IntakeError(400, refused.code, refused.message) from None


@_endpoint("POST")
def merge(request: HttpRequest, account: Account, received_at: Any) -> HttpResponse:
    """``POST /personalize/user-attributes/actions/merge`` ``{"sourceUserUid",
    "targetUserUid"}`` (a visitor logged in): the source's assignments, impressions and
    conversions follow the target, and an ``alias`` message naming both as ``_uid`` merges
    their profiles."""
    source, target = _body(request, _merge_body)
    if source == target:
        return _json(_SUCCESS)
    with transaction.atomic():
        failures = _store(account, [{
            "type": "alias", "previousId": source, "userId": target, "anonymousId": target,
            "_uid": [source, target], "context": _context(request)}], [], received_at)
        if failures:
            raise Refused(400, failures[0].code, failures[0].reason)
        tracking.follow_visitor(account.pk, source, target)
    return _json(_SUCCESS)
