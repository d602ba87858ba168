"""The decision endpoints: ``POST /api/v1/decide`` (native) and OFREP (PROTOCOLS.md §3).

Both authenticate with a write key (as collection does: ``Authorization: Bearer swk_…``,
``X-API-Key``, Basic auth with the key as user name, or ``writeKey`` in the body) and answer
from ``experiences.decide``. Plain Django views (no DRF): they run on every page view.

Native errors are ``{"code", "message"}``; OFREP errors are the protocol's
``{"key", "errorCode", "errorDetails"}`` (``{"errorCode", "errorDetails"}`` for bulk), and a
refused write key is ``401``/``403`` with ``{"code", "message"}`` on both.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import orjson
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt

from cdp_site.access import check_write_key_cached
from cdp_site.text import NUL_MESSAGE, contains_nul
from cdp_site.write_keys import KEY_PROBLEMS, presented_write_key
from experiences.config import AccountConfig, active_config
from experiences.decide import Decision, VisitorDecision, decide_with_config

MAX_BODY_BYTES = 64 * 1024
MAX_KEYS = 200
MAX_ATTRIBUTES = 100
JSON = "application/json"
NO_STORE = "no-store"



class BadRequest(Exception):
    """A request refused before deciding: ``kind`` is an OFREP error code, ``code`` the
    native one."""

    def __init__(self, kind: str, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.kind, self.code, self.message, self.status = kind, code, message, status


def _json(data: Any, status: int = 200) -> HttpResponse:
    response = HttpResponse(orjson.dumps(data), content_type=JSON, status=status)
    response["Cache-Control"] = NO_STORE
    return response


def _error(status: int, code: str, message: str) -> HttpResponse:
    return _json({"code": code, "message": message}, status)


def _method_not_allowed() -> HttpResponse:
    response = _error(405, "method_not_allowed", "Use POST.")
    response["Allow"] = "POST"
    return response


# --------------------------------------------------------------------------- request parsing


def _body(request: HttpRequest) -> Any:
    declared = request.META.get("CONTENT_LENGTH")
    if declared and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise BadRequest("PARSE_ERROR", "body_too_large",
                         f"The body is over {MAX_BODY_BYTES // 1024} KB.")
    raw = request.read(MAX_BODY_BYTES + 1)
    if len(raw) > MAX_BODY_BYTES:
        raise BadRequest("PARSE_ERROR", "body_too_large",
                         f"The body is over {MAX_BODY_BYTES // 1024} KB.")
    if not raw.strip():
        return {}
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequest("PARSE_ERROR", "invalid_json",
                         f"The body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise BadRequest("PARSE_ERROR", "invalid_body", "The body must be a JSON object.")
    return body


def _no_nul(body: dict[str, Any]) -> None:
    """PostgreSQL holds no NUL: a uid or identifier with one would fail in the query."""
    if contains_nul(body):
        raise BadRequest("INVALID_CONTEXT", "invalid_text", NUL_MESSAGE)


def _account(request: HttpRequest, body: Any) -> tuple[int | None, HttpResponse | None]:
    presented = presented_write_key(request, body)
    if not presented:
        problem, key = "missing", None
    else:
        key, problem = check_write_key_cached(presented)
    if problem or key is None:
        status, code, message = KEY_PROBLEMS[problem or "unknown"]
        return None, _error(status, code, message)
    return key.account_id, None


def _uid(value: Any, kind: str, name: str) -> str:
    if value is None or value == "":
        raise BadRequest("TARGETING_KEY_MISSING", "missing_uid",
                         f"No {name}: the visitor's id is required.")
    if not isinstance(value, str):
        raise BadRequest(kind, "invalid_uid", f"{name} must be a string.")
    if len(value) > 300 or not value.strip():
        raise BadRequest(kind, "invalid_uid",
                         f"{name} must be 1 to 300 characters, not only spaces.")
    return value


def _identifiers(value: Any, name: str = "identifiers") -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or len(value) > 20:
        raise BadRequest("INVALID_CONTEXT", "invalid_identifiers",
                         f"{name} must be an object of at most 20 field: value pairs.")
    out: dict[str, str] = {}
    for field, item in value.items():
        if isinstance(item, bool) or not isinstance(item, str | int) or str(item) == "":
            raise BadRequest("INVALID_CONTEXT", "invalid_identifiers",
                             f"{name}.{field} must be a non-empty string.")
        out[field] = str(item)
    return out


def _attributes(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict) or len(value) > MAX_ATTRIBUTES:
        raise BadRequest("INVALID_CONTEXT", "invalid_attributes",
                         f"attributes must be an object of at most {MAX_ATTRIBUTES} entries.")
    return value


def _keys(value: Any) -> list[str] | None:
    if value is None:
        return None
    if (not isinstance(value, list) or len(value) > MAX_KEYS
            or not all(isinstance(key, str) and key for key in value)):
        raise BadRequest("INVALID_CONTEXT", "invalid_experiences",
                         f"experiences must be a list of at most {MAX_KEYS} experience keys.")
    return list(dict.fromkeys(value))


# --------------------------------------------------------------------------- native


def _native(decision: Decision) -> dict[str, Any]:
    return {"experience": decision.experience_key, "experience_uid": decision.experience_uid,
            "variant": decision.variant_key, "variant_uid": decision.variant_uid,
            "value": decision.value, "content": decision.content, "reason": decision.reason,
            "detail": decision.detail, "in_experiment": decision.in_experiment}


def _native_answer(result: VisitorDecision) -> dict[str, Any]:
    return {"uid": result.visitor, "known": result.profile_id is not None,
            "audiences": result.audiences,
            "decisions": [_native(decision) for decision in result.decisions]}


@csrf_exempt
def decide_view(request: HttpRequest) -> HttpResponse:
    """``POST /api/v1/decide``: ``{"uid", "identifiers"?, "attributes"?, "experiences"?}`` →
    ``{"uid", "known", "audiences", "decisions": [...]}``."""
    if request.method != "POST":
        return _method_not_allowed()
    try:
        body = _body(request)
    except BadRequest as bad:
        account_id, refused = _account(request, None)
        return refused or _error(bad.status, bad.code, bad.message)
    account_id, refused = _account(request, body)
    if refused is not None:
        return refused
    assert account_id is not None
    try:
        _no_nul(body)
        uid = _uid(body.get("uid"), "INVALID_CONTEXT", "uid")
        identifiers = _identifiers(body.get("identifiers"))
        attributes = _attributes(body.get("attributes"))
        keys = _keys(body.get("experiences"))
    except BadRequest as bad:
        return _error(bad.status, bad.code, bad.message)
    config = active_config(account_id)
    missing = [key for key in keys or () if config.get(key) is None]
    if missing:  # refused before deciding: nothing is stored
        return _error(404, "unknown_experience",
                      "No experience with the key " + ", ".join(map(repr, missing)) + ".")
    result = decide_with_config(config, uid, identifiers=identifiers, attributes=attributes,
                                keys=keys)
    return _json(_native_answer(result))


# --------------------------------------------------------------------------- OFREP


# OFREP's metadata names the rule, but not whether a split assignment is new or stored: the
# bulk answer (and its ETag) stays the same from the first request on.
_OFREP_DETAIL = {"assigned": "split", "sticky": "split"}


def _metadata(decision: Decision) -> dict[str, Any]:
    return {"experienceUid": decision.experience_uid, "variantUid": decision.variant_uid or "",
            "inExperiment": decision.in_experiment,
            "detail": _OFREP_DETAIL.get(decision.detail, decision.detail)}


def _flag(decision: Decision) -> dict[str, Any]:
    flag: dict[str, Any] = {"key": decision.experience_key, "reason": decision.reason,
                            "variant": decision.variant_key or "",
                            "metadata": _metadata(decision)}
    if decision.variant_key is not None:
        flag["value"] = decision.value
    return flag


def _context(body: dict[str, Any]) -> tuple[str, dict[str, str], dict[str, Any]]:
    """(targeting key, identifiers, attributes) of an OFREP request's context. The context's
    ``identifiers`` object (optional) names the visitor's identifiers; everything else but
    ``targetingKey`` is a live attribute."""
    context = body.get("context")
    if context is None:
        context = {}
    if not isinstance(context, dict):
        raise BadRequest("INVALID_CONTEXT", "invalid_context", "context must be an object.")
    uid = _uid(context.get("targetingKey"), "INVALID_CONTEXT", "targetingKey")
    identifiers = _identifiers(context.get("identifiers"), "context.identifiers")
    attributes = {name: value for name, value in context.items()
                  if name not in ("targetingKey", "identifiers")}
    if len(attributes) > MAX_ATTRIBUTES:
        raise BadRequest("INVALID_CONTEXT", "invalid_attributes",
                         f"The context has more than {MAX_ATTRIBUTES} attributes.")
    return uid, identifiers, attributes


def _ofrep(request: HttpRequest, failure: Callable[[BadRequest], HttpResponse],
           ) -> tuple[int, tuple[str, dict[str, str], dict[str, Any]]] | HttpResponse:
    """The account and the context of an OFREP request, or the answer refusing it."""
    if request.method != "POST":
        return _method_not_allowed()
    try:
        body = _body(request)
    except BadRequest as bad:
        _account_id, refused = _account(request, None)
        return refused or failure(bad)
    account_id, refused = _account(request, body)
    if refused is not None:
        return refused
    assert account_id is not None
    try:
        _no_nul(body)
        return account_id, _context(body)
    except BadRequest as bad:
        return failure(bad)


@csrf_exempt
def ofrep_flag(request: HttpRequest, key: str) -> HttpResponse:
    """``POST /ofrep/v1/evaluate/flags/{key}``: one experience for one visitor."""
    parsed = _ofrep(request, lambda bad: _json(
        {"key": key, "errorCode": bad.kind, "errorDetails": bad.message}, 400))
    if isinstance(parsed, HttpResponse):
        return parsed
    account_id, (uid, identifiers, attributes) = parsed
    config = active_config(account_id)
    if config.get(key) is None:
        details = (f"The experience {key!r} is a draft: activate it first."
                   if key in config.draft_keys else f"No experience with the key {key!r}.")
        return _json({"key": key, "errorCode": "FLAG_NOT_FOUND", "errorDetails": details}, 404)
    result = decide_with_config(config, uid, identifiers=identifiers, attributes=attributes,
                                keys=[key])
    return _json(_flag(result.decisions[0]))


def _etag(body: bytes) -> str:
    return '"' + hashlib.blake2b(body, digest_size=12).hexdigest() + '"'


def _etag_matches(request: HttpRequest, etag: str) -> bool:
    header = request.META.get("HTTP_IF_NONE_MATCH", "")
    if not header:
        return False
    tags = {tag.strip().removeprefix("W/") for tag in header.split(",")}
    return etag in tags or "*" in tags


@csrf_exempt
def ofrep_bulk(request: HttpRequest) -> HttpResponse:
    """``POST /ofrep/v1/evaluate/flags``: every experience for one visitor, with an ETag of
    the answer (``If-None-Match`` with it → ``304``, no body)."""
    parsed = _ofrep(request, lambda bad: _json(
        {"errorCode": bad.kind, "errorDetails": bad.message}, 400))
    if isinstance(parsed, HttpResponse):
        return parsed
    account_id, (uid, identifiers, attributes) = parsed
    config: AccountConfig = active_config(account_id)
    result = decide_with_config(config, uid, identifiers=identifiers, attributes=attributes)
    body = orjson.dumps({"flags": [_flag(decision) for decision in result.decisions]})
    etag = _etag(body)
    if _etag_matches(request, etag):
        response = HttpResponse(status=304)
    else:
        response = HttpResponse(body, content_type=JSON)
    response["ETag"] = etag
    response["Cache-Control"] = NO_STORE
    return response
