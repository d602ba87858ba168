"""The HTTP side every collection path shares: reading bodies within limits and parsing JSON,
answering in the error shape clients expect. How a request presents its write key is
``cdp_site.write_keys``."""

from __future__ import annotations

import json
import math
import zlib
from typing import TYPE_CHECKING, Any

from django.http import JsonResponse

from profiles.collection.messages import MAX_DECOMPRESSED_BYTES, MAX_REQUEST_BYTES
from profiles.models import FailedEvent

if TYPE_CHECKING:
    from django.http import HttpRequest



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
