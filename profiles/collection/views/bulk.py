"""`POST /collect/bulk/{stream}`: NDJSON or CSV in bulk, with an access token (Bearer)."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from cdp_site.access import authenticate_access_token
from cdp_site.client import client_ip
from cdp_site.tenancy import actor_for_token
from profiles.collection import bulk
from profiles.collection.intake import IntakeError
from profiles.collection.messages import QuotaExceeded
from profiles.models import STREAM_NAME_MAX

REQUIRED_PERMISSION = "schema.edit"
FIELD_NAME_MAX = 200


def _error(status: int, code: str, message: str) -> JsonResponse:
    return JsonResponse({"code": code, "message": message}, status=status)


def _unauthorized(code: str, message: str) -> JsonResponse:
    response = _error(401, code, message)
    response["WWW-Authenticate"] = 'Bearer realm="strata"'
    return response


def _field_name(request: HttpRequest, name: str) -> str | None:
    value = request.GET.get(name, "").strip()
    if len(value) > FIELD_NAME_MAX:
        raise IntakeError(400, "invalid", f"{name} is over {FIELD_NAME_MAX} characters.")
    return value or None


@csrf_exempt
def collect_bulk(request: HttpRequest, stream: str) -> HttpResponse:
    """The body is streamed into the raw store (never read whole); the answer sums it up:
    {"received", "stored", "duplicates", "failed", "failures": [the first 20]}."""
    if request.method != "POST":
        response = _error(405, "method_not_allowed", "Use POST.")
        response["Allow"] = "POST"
        return response
    scheme, _, secret = request.META.get("HTTP_AUTHORIZATION", "").partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        return _unauthorized("not_authenticated", "Send an access token: "
                                                  "Authorization: Bearer stk_…")
    ip = client_ip(request)
    token = authenticate_access_token(secret.strip(), ip)
    if token is None:
        return _unauthorized("invalid_token", "The access token is not valid.")
    actor = actor_for_token(token, ip)
    if not actor.has(REQUIRED_PERMISSION):
        return _error(403, "permission_denied",
                      f"Your roles do not allow this ({REQUIRED_PERMISSION}).")
    if not bulk.valid_stream_name(stream):
        return _error(400, "invalid_stream", "A stream name is letters, digits, - and _ "
                                             f"(at most {STREAM_NAME_MAX}).")
    encoding = request.META.get("HTTP_CONTENT_ENCODING", "").strip().lower()
    if encoding not in ("", "identity", "gzip", "x-gzip"):
        return _error(400, "unsupported_encoding",
                      f"Content-Encoding {encoding!r} is not supported (use gzip).")
    try:
        summary = bulk.import_events(
            actor.account, stream, bulk.request_chunks(request),
            fmt=bulk.format_for(request.content_type or "", request.GET.get("format")),
            gzipped=True if encoding in ("gzip", "x-gzip") else None,
            names=bulk.FieldNames(timestamp=_field_name(request, "timestamp_field"),
                                  message_id=_field_name(request, "message_id_field")),
            source="bulk", key_prefix=token.prefix, remote_addr=ip,
        )
    except IntakeError as exc:
        return exc.response()
    except QuotaExceeded as exc:
        response = _error(429, "quota_exceeded", str(exc))
        response["Retry-After"] = str(exc.retry_after)
        return response
    return JsonResponse(summary.as_dict())
