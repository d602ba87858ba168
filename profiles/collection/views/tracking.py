"""The public collection endpoints: the Segment-spec tracking API, RudderStack's extras, the
Lytics tag format and JSON collection (docs/collection.md).

Plain Django views, kept thin: read the body within limits, find the write key (or the
account, for the tag), turn the body into events with ``profiles.collection.segment`` /
``profiles.collection.lytics``, and store them with ``collect.accept`` (one INSERT per request).
Every
refused request is kept as a FailedEvent, with only the visible prefix of a presented key.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.http import HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt

from cdp_site.access import check_write_key_cached
from cdp_site.client import client_ip
from cdp_site.models import Account
from cdp_site.write_keys import KEY_PROBLEMS, key_prefix, presented_write_key
from profiles.collection import lytics, segment
from profiles.collection.intake import IntakeError, parse_json, read_body
from profiles.collection.messages import MAX_REQUEST_BYTES, Failure, IncomingEvent, QuotaExceeded
from profiles.collection.store import accept, record_failures
from profiles.models import STREAM_NAME_MAX, FailedEvent

if TYPE_CHECKING:
    from datetime import datetime

    from django.http import HttpRequest

    from cdp_site.models import WriteKey

# A transparent 1x1 GIF: what the tag's image requests get back.
PIXEL = (b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00"
         b"\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;")
NO_STORE = "no-cache, no-store, must-revalidate, max-age=0"
VISITOR_COOKIE_AGE = 365 * 24 * 3600
_SECRET = re.compile(r"\b(?:swk|stk)_[A-Za-z0-9_-]{9,}")



def error(status: int, code: str, message: str) -> JsonResponse:
    return JsonResponse({"code": code, "message": message}, status=status)


def _method_not_allowed(*allowed: str) -> JsonResponse:
    response = error(405, "method_not_allowed", f"Use {' or '.join(allowed)}.")
    response["Allow"] = ", ".join(allowed)
    return response


def _remote(request: HttpRequest) -> str | None:
    address = client_ip(request)
    if not address:
        return None
    try:  # the usual case, checked in C: a dotted quad is already in its normal form
        socket.inet_pton(socket.AF_INET, address)
    except OSError:
        pass
    else:
        return address
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        return None


def _redact(body: bytes | str, presented: str) -> str:
    """A refused body as text, without any write key or token secret it holds."""
    if isinstance(body, bytes):
        # Enough bytes for BODY_LIMIT characters, so a long body is still marked truncated.
        body = body[: 4 * (FailedEvent.BODY_LIMIT + 1)].decode("utf-8", "replace")
    if len(presented) >= 8:
        body = body.replace(presented, key_prefix(presented) + "…")
    return _SECRET.sub(lambda m: m.group(0)[:12] + "…", body)


def _refuse(
    request: HttpRequest,
    status: int,
    code: str,
    message: str,
    *,
    source: str,
    body: bytes | str,
    received_at: datetime,
    account: Account | None = None,
    stream: str = "",
    presented: str = "",
) -> JsonResponse:
    """Answer a refused request and keep it as a failed event (nothing else is stored)."""
    record_failures(
        [Failure(code=code, reason=message, body=_redact(body, presented))],
        account=account, stream=stream, source=source, received_at=received_at,
        key_prefix=key_prefix(presented), remote_addr=_remote(request),
    )
    return error(status, code, message)


@dataclass
class Caller:
    """Who sent a request: the write key presented, and what is wrong with it ("" if all is
    well, else a key of KEY_PROBLEMS)."""

    presented: str
    key: WriteKey | None
    problem: str

    @property
    def account(self) -> Account | None:
        return self.key.account if self.key is not None else None


def _caller(request: HttpRequest, body: Any = None) -> Caller:
    presented = presented_write_key(request, body)
    if not presented:
        keys = _batch_message_keys(body)
        if len(keys) > 1:  # filed under none of their accounts: each names its own (#18)
            return Caller(keys[0], None, "mixed")
        presented = keys[0] if keys else ""
    if not presented:
        return Caller("", None, "missing")
    key, problem = check_write_key_cached(presented)
    return Caller(presented, key, problem)


def _batch_message_keys(body: Any) -> list[str]:
    """Older analytics.js builds send a batch's write key only inside its messages: the
    distinct keys they name, the first message's first."""
    if isinstance(body, dict):
        messages = body.get("batch")
        if isinstance(messages, list):
            keys = (m.get("writeKey") for m in messages if isinstance(m, dict))
            return list(dict.fromkeys(k for k in keys if isinstance(k, str) and k))
    return []


def _refuse_body(
    request: HttpRequest, exc: IntakeError, raw: bytes, *, source: str, received_at: datetime,
    stream: str = "",
) -> JsonResponse:
    """A body that could not be read or parsed: filed under the account of a known key
    presented in a header or the query string, if any."""
    caller = _caller(request)
    account = caller.account
    return _refuse(request, exc.status, exc.code, exc.message, source=source,
                   body=exc.body or raw,
                   received_at=received_at, account=account,
                   stream=stream or (caller.key.stream if caller.key is not None else ""),
                   presented=caller.presented)


def _refuse_key(
    request: HttpRequest, caller: Caller, *, source: str, body: bytes, received_at: datetime,
    stream: str = "",
) -> JsonResponse:
    """A missing or unknown key (401, filed under no account), a disabled or revoked one (401)
    or one of a disabled account (403), both filed under the key's account."""
    status, code, message = KEY_PROBLEMS[caller.problem]
    return _refuse(request, status, code, message, source=source, body=body,
                   received_at=received_at, account=caller.account,
                   stream=stream or (caller.key.stream if caller.key is not None else ""),
                   presented=caller.presented)


def _store(
    request: HttpRequest,
    account: Account,
    stream: str,
    events: list[IncomingEvent],
    failures: list[Failure],
    *,
    source: str,
    received_at: datetime,
    key: WriteKey | None,
    single: bool,
) -> JsonResponse | None:
    """Store what was accepted; answer 429 over quota, or 400 when the only message of a
    single-message request was refused. None: the caller answers success."""
    try:
        accept(account, stream, events, failures, source=source, received_at=received_at,
               write_key_id=key.pk if key is not None else None,
               key_prefix=key.prefix if key is not None else "", remote_addr=_remote(request))
    except QuotaExceeded as exc:
        response = error(429, "quota_exceeded", str(exc))
        response["Retry-After"] = str(int(exc.retry_after))
        return response
    if single and failures and not events:
        return error(400, failures[0].code, failures[0].reason)
    return None


# What JsonResponse({"success": True}) sends, made once: most answers are this one.
_SUCCESS = b'{"success": true}'


def _success(failures: list[Failure]) -> HttpResponse:
    if not failures:
        return HttpResponse(_SUCCESS, content_type="application/json")
    payload: dict[str, Any] = {"success": True, "rejected": [
        {"position": f.line, "code": f.code, "message": f.reason} for f in failures]}
    return JsonResponse(payload)


def _stream_problem(stream: str) -> str:
    if len(stream) > STREAM_NAME_MAX:
        return f"A stream name has at most {STREAM_NAME_MAX} characters."
    return ""


# ---- Segment-spec tracking API -----------------------------------------------------------

def _segment(request: HttpRequest, kind: str, source: str) -> HttpResponse:
    if request.method != "POST":
        return _method_not_allowed("POST")
    received_at = timezone.now()
    raw = b""
    try:
        raw = read_body(request)
        body = parse_json(raw)
    except IntakeError as exc:
        return _refuse_body(request, exc, raw, source=source, received_at=received_at)
    caller = _caller(request, body)
    if caller.problem:
        return _refuse_key(request, caller, source=source, body=raw, received_at=received_at)
    key = caller.key
    assert key is not None
    try:
        events, failures = segment.parse_request(kind, body, received_at)
    except IntakeError as exc:
        return _refuse(request, exc.status, exc.code, exc.message, source=source, body=raw,
                       received_at=received_at, account=key.account, stream=key.stream,
                       presented=caller.presented)
    refused = _store(request, key.account, key.stream, events, failures, source=source,
                     received_at=received_at, key=key, single=kind != "batch")
    return refused or _success(failures)


@csrf_exempt
def tracking_api(request: HttpRequest, name: str) -> HttpResponse:
    """POST /v1/{identify,track,page,screen,group,alias,batch} and /v1/{i,t,p,s,g,a,b}."""
    return _segment(request, segment.message_kind(name), "segment")


@csrf_exempt
def beacon(request: HttpRequest) -> HttpResponse:
    """RudderStack's POST /beacon/v1/batch?writeKey=… (navigator.sendBeacon, text/plain)."""
    return _segment(request, "batch", "beacon")


@csrf_exempt
def client_metrics(request: HttpRequest) -> HttpResponse:
    """POST /v1/m: analytics.js reports its own metrics here; accepted and discarded."""
    if request.method != "POST":
        return _method_not_allowed("POST")
    return JsonResponse({"success": True})


@csrf_exempt
def source_config(request: HttpRequest) -> HttpResponse:
    """RudderStack's GET /sourceConfig/?writeKey=…: a source with no device-mode
    destinations, so the SDK sends everything to Strata."""
    if request.method != "GET":
        return _method_not_allowed("GET")
    caller = _caller(request)
    if caller.problem:
        status, code, message = KEY_PROBLEMS[caller.problem]
        return error(status, code, message)
    key = caller.key
    assert key is not None
    return JsonResponse({"source": {
        "id": str(key.pk), "name": key.name, "workspaceId": key.account.aid, "enabled": True,
        "config": {}, "destinations": [],
    }})


# ---- The Lytics tag ----------------------------------------------------------------------

def _tag_account(
    request: HttpRequest, aid: str, *, body: bytes | str, received_at: datetime, stream: str,
) -> Account | JsonResponse:
    """The account a tag URL names (the tag sends no key): 404 unknown, 403 disabled, both
    kept as failed events."""
    account = Account.objects.filter(aid=aid).first()
    if account is None:
        return _refuse(request, 404, "unknown_account", f"No account has the id {aid!r}.",
                       source="lytics_tag", body=body, received_at=received_at)
    if not account.enabled:
        return _refuse(request, 403, "account_disabled", "The account is disabled.",
                       source="lytics_tag", body=body, received_at=received_at,
                       account=account, stream=stream)
    return account


def _query_bytes(request: HttpRequest) -> bytes:
    """The raw query string (WSGI hands it over decoded as Latin-1)."""
    query = request.META.get("QUERY_STRING", "")
    try:
        return query.encode("latin-1")
    except UnicodeEncodeError:
        return query.encode("utf-8", "surrogateescape")


def _pixel() -> HttpResponse:
    response = HttpResponse(PIXEL, content_type="image/gif")
    response["Cache-Control"] = NO_STORE
    return response


@csrf_exempt
def tag_collect(request: HttpRequest, aid: str, stream: str = "default") -> HttpResponse:
    """GET /c/{aid}[/{stream}]?flattened=query -> a 1x1 GIF; POST the same as a form field
    `_js` (or a JSON body) -> 200."""
    if request.method not in ("GET", "POST"):
        return _method_not_allowed("GET", "POST")
    received_at = timezone.now()
    source = "lytics_tag"
    unreadable: IntakeError | None = None
    if request.method == "GET":
        raw = _query_bytes(request)
        if len(raw) > MAX_REQUEST_BYTES:
            unreadable = IntakeError(400, "body_too_large",
                                     f"The query string is over {MAX_REQUEST_BYTES // 1024} KB.")
    else:
        try:
            raw = read_body(request)
        except IntakeError as exc:
            unreadable, raw = exc, exc.body
    account = _tag_account(request, aid, body=raw, received_at=received_at, stream=stream)
    if isinstance(account, JsonResponse):
        return account
    if unreadable is not None:
        return _refuse(request, unreadable.status, unreadable.code, unreadable.message,
                       source=source, body=raw, received_at=received_at, account=account,
                       stream=stream)
    problem = _stream_problem(stream)
    if problem:
        return _refuse(request, 400, "invalid_stream", problem, source=source, body=raw,
                       received_at=received_at, account=account)
    cookie = request.COOKIES.get(lytics.VISITOR_COOKIE, "")
    cookie_uid = cookie if lytics.VISITOR_ID.fullmatch(cookie) else ""
    try:
        if request.method == "GET" or request.content_type == "application/x-www-form-urlencoded":
            pairs = lytics.parse_query(raw)
            if request.method == "POST":
                pairs = lytics.form_payload(pairs)
            result = lytics.tag_message(pairs, received_at, cookie_uid=cookie_uid)
            events, failures = ([result], []) if isinstance(result, IncomingEvent) else (
                [], [result])
            single = True
        else:
            body = parse_json(raw)
            events, failures = lytics.parse_records(body, received_at)
            single = isinstance(body, dict)
    except IntakeError as exc:
        return _refuse(request, exc.status, exc.code, exc.message, source=source, body=raw,
                       received_at=received_at, account=account, stream=stream)
    refused = _store(request, account, stream, events, failures, source=source,
                     received_at=received_at, key=None, single=single)
    if refused is not None:
        return refused
    return _pixel() if request.method == "GET" else _success(failures)


@csrf_exempt
def tag_visitor_id(request: HttpRequest, aid: str) -> HttpResponse:
    """GET /cid/{aid}?callback=fn -> `fn("<visitor id>");` (JSONP), from the seerid cookie or
    a new id, which is then set as that cookie. Without a callback: `{"_uid": "<id>"}`."""
    if request.method != "GET":
        return _method_not_allowed("GET")
    account = Account.objects.filter(aid=aid).only("pk", "enabled").first()
    if account is None:
        return error(404, "unknown_account", f"No account has the id {aid!r}.")
    if not account.enabled:
        return error(403, "account_disabled", "The account is disabled.")
    uid, _new = lytics.visitor_id(request.COOKIES.get(lytics.VISITOR_COOKIE))
    callback = request.GET.get("callback")
    if callback is None:
        response: HttpResponse = JsonResponse({"_uid": uid})
    else:
        script = lytics.jsonp(callback, uid)
        if script is None:
            return error(400, "invalid_callback", "callback must be a JavaScript name.")
        response = HttpResponse(script, content_type="application/javascript; charset=utf-8")
    response["Cache-Control"] = "private, " + NO_STORE
    secure = request.is_secure()
    response.set_cookie(lytics.VISITOR_COOKIE, uid, max_age=VISITOR_COOKIE_AGE,
                        samesite="None" if secure else "Lax", secure=secure)
    return response


# ---- JSON collection for servers ---------------------------------------------------------

@csrf_exempt
def json_collect(request: HttpRequest, stream: str | None = None) -> HttpResponse:
    """POST /collect/json/{stream}: one JSON object or an array of them, with a write key.
    The path's stream wins over the key's; `?timestamp_field=` names the event time field."""
    if request.method != "POST":
        return _method_not_allowed("POST")
    received_at = timezone.now()
    source = "json"
    raw = b""
    try:
        raw = read_body(request)
        body = parse_json(raw)
    except IntakeError as exc:
        return _refuse_body(request, exc, raw, source=source, received_at=received_at,
                            stream=stream or "")
    caller = _caller(request, body)
    if caller.problem:
        return _refuse_key(request, caller, source=source, body=raw, received_at=received_at,
                           stream=stream or "")
    key = caller.key
    assert key is not None
    stream = stream or key.stream
    problem = _stream_problem(stream)
    if problem:
        return _refuse(request, 400, "invalid_stream", problem, source=source, body=raw,
                       received_at=received_at, account=key.account,
                       presented=caller.presented)
    try:
        events, failures = lytics.parse_records(
            body, received_at, timestamp_field=request.GET.get("timestamp_field") or None)
    except IntakeError as exc:
        return _refuse(request, exc.status, exc.code, exc.message, source=source, body=raw,
                       received_at=received_at, account=key.account, stream=stream,
                       presented=caller.presented)
    refused = _store(request, key.account, stream, events, failures, source=source,
                     received_at=received_at, key=key, single=isinstance(body, dict))
    return refused or _success(failures)
