"""The HTTP side every collection path shares: reading bodies within limits, finding the
write key, and answering in the error shape clients expect."""

from __future__ import annotations

import base64
import binascii
import json
import math
import zlib
from typing import TYPE_CHECKING, Any

from django.http import JsonResponse

from cdp_site.access import VISIBLE_PREFIX_LENGTH, authenticate_write_key
from profiles.collection.store import MAX_DECOMPRESSED_BYTES, MAX_REQUEST_BYTES
from profiles.models import FailedEvent

if TYPE_CHECKING:
    from django.http import HttpRequest

    from cdp_site.models import WriteKey


class IntakeError(Exception):
    """A whole request refused: status, machine-readable code, message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.body = b""  # what had been read of the body, to keep on the failed event

    def response(self) -> JsonResponse:
        return JsonResponse({"code": self.code, "message": self.message}, status=self.status)


def read_body(request: HttpRequest, limit: int = MAX_REQUEST_BYTES) -> bytes:
    """The request body, gunzipped when sent with Content-Encoding: gzip, within limits
    (a gzip bomb stops at the decompressed cap)."""
    declared = request.META.get("CONTENT_LENGTH")
    if declared and declared.isdigit() and int(declared) > limit:
        error = IntakeError(400, "body_too_large", f"The body is over {limit // 1024} KB.")
        error.body = request.read(FailedEvent.BODY_LIMIT + 1)  # the start, for the record
        raise error
    raw = request.read(limit + 1)
    try:
        if len(raw) > limit:
            raise IntakeError(400, "body_too_large", f"The body is over {limit // 1024} KB.")
        encoding = request.META.get("HTTP_CONTENT_ENCODING", "").lower().strip()
        if encoding in ("gzip", "x-gzip"):
            inflated = gunzip_capped(raw, max(limit, MAX_DECOMPRESSED_BYTES))
            if len(inflated) > limit:
                raise IntakeError(400, "body_too_large",
                                  f"The decompressed body is over {limit // 1024} KB.")
            return inflated
        if encoding not in ("", "identity"):
            raise IntakeError(400, "unsupported_encoding", f"Content-Encoding {encoding!r} is "
                                                            "not supported (use gzip).")
    except IntakeError as error:
        error.body = raw
        raise
    return raw


def gunzip_capped(data: bytes, cap: int) -> bytes:
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(data, cap + 1)
    except zlib.error:
        raise IntakeError(400, "invalid_gzip", "The body is not valid gzip.") from None
    if len(out) > cap or inflater.unconsumed_tail:
        raise IntakeError(400, "body_too_large", "The decompressed body is too large.")
    return out


def parse_json(raw: bytes) -> Any:
    """JSON whatever the Content-Type says; non-UTF-8 bytes and bad JSON are refused."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise IntakeError(400, "invalid_encoding",
                          f"The body is not UTF-8 (byte {exc.start}).") from None
    try:
        return json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
    except (ValueError, RecursionError) as exc:
        raise IntakeError(400, "invalid_json", f"The body is not valid JSON: {exc}") from None


def _finite_float(text: str) -> float:
    """A number too large for a float (1e400) would become Infinity, which jsonb refuses."""
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"the number {text[:40]} is out of range")
    return value


def _refuse_constant(name: str) -> Any:
    """NaN and Infinity are not JSON (and PostgreSQL's jsonb refuses them)."""
    raise ValueError(f"{name} is not a JSON value")


def basic_auth_user(request: HttpRequest) -> str | None:
    """The user part of `Authorization: Basic base64(user:)` (Segment sends the key so)."""
    header = request.META.get("HTTP_AUTHORIZATION", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic" or not value:
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return decoded.partition(":")[0] or None


def bearer(request: HttpRequest) -> str | None:
    header = request.META.get("HTTP_AUTHORIZATION", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return request.META.get("HTTP_X_API_KEY") or None


def raw_authorization(request: HttpRequest) -> str | None:
    """`Authorization: <key>` with no scheme, as Lytics' collection API is called."""
    header = request.META.get("HTTP_AUTHORIZATION", "").strip()
    return header if header.startswith("swk_") and " " not in header else None


def presented_write_key(request: HttpRequest, body: Any = None) -> str:
    """The write key as presented: Basic auth, a Bearer/X-API-Key header, a bare
    Authorization header, the body's `writeKey`, or the `writeKey` query parameter; or ""."""
    presented = (
        basic_auth_user(request)
        or bearer(request)
        or raw_authorization(request)
        or (body.get("writeKey") if isinstance(body, dict) else None)
        or request.GET.get("writeKey")
    )
    return presented if isinstance(presented, str) else ""


def key_prefix(presented: str) -> str:
    """What may be kept of a presented key on a failed event: the visible prefix of a real key
    (at most half of whatever was presented, so a short secret is never kept whole)."""
    return presented[: min(VISIBLE_PREFIX_LENGTH, len(presented) // 2)]


def find_write_key(request: HttpRequest, body: Any = None) -> tuple[WriteKey | None, str]:
    """The write key from Basic auth, a Bearer/X-API-Key header, the body's `writeKey`, or the
    `writeKey` query parameter; and the presented value (to record on failures)."""
    presented = presented_write_key(request, body)
    if not presented:
        return None, ""
    return authenticate_write_key(presented), presented
