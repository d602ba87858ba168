"""Delivering one signed message to a job's webhook: the authorization's headers, the
Standard Webhooks signature, a 1 MB body bound, and a few quick retries inside the run
(honouring ``Retry-After`` up to a minute) before the runner backs off for longer."""

from __future__ import annotations

import base64
import hashlib
import random
from typing import Any
from urllib.parse import urljoin

import orjson

from connectors import outbound
from connectors.errors import PermanentError, TransientError
from connectors.registry import RunContext
from connectors.signing import signed_headers

MAX_BODY_BYTES = 1024 * 1024
ATTEMPTS = 3
MAX_INLINE_WAIT = 60.0


def auth_headers(secret: dict[str, Any]) -> dict[str, str]:
    headers = dict(secret.get("headers") or {})
    if secret.get("bearer_token"):
        headers["Authorization"] = f"Bearer {secret['bearer_token']}"
    elif secret.get("basic_username"):
        pair = f"{secret['basic_username']}:{secret['basic_password']}".encode()
        headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
    return headers


def session(ctx: RunContext) -> outbound.Session:
    """The run's outbound session (kept-alive connections, the allowlist read once)."""
    found = ctx.extra.get("session")
    if found is None:
        found = ctx.extra["session"] = outbound.Session(ctx.job.account_id)
    assert isinstance(found, outbound.Session)
    return found


def close_session(ctx: RunContext) -> None:
    found = ctx.extra.pop("session", None)
    if isinstance(found, outbound.Session):
        found.close()


def message_digest(payload: Any) -> str:
    """A short digest of a message's content, part of its ``webhook-id``: a batch sent again
    after a crash keeps its id, one whose content changed meanwhile gets a new one."""
    return hashlib.sha256(orjson.dumps(payload)).hexdigest()[:16]


def destination(ctx: RunContext, path: str | None) -> str:
    authorization = ctx.job.authorization
    base = authorization.base_url if authorization is not None else ""
    url = urljoin(base, path) if path else base
    if not url:
        raise PermanentError("the job has no URL: set the authorization's base URL or the "
                             "configuration's path", code="no_url")
    return url


def post_signed(ctx: RunContext, url: str, payload: Any, message_id: str,
                timeout: float = 30.0) -> outbound.Response:
    """POST ``payload`` as JSON, signed; the 2xx answer, or an error after the quick retries."""
    body = orjson.dumps(payload)
    if len(body) > MAX_BODY_BYTES:
        raise PermanentError(f"a message of {len(body)} bytes is over the 1 MB bound; lower "
                             "the batch size", code="body_too_large")
    return call_signed(ctx, "POST", url, body, message_id, timeout)


def call_signed(ctx: RunContext, method: str, url: str, body: bytes, message_id: str,
                timeout: float = 30.0) -> outbound.Response:
    """One signed call with the authorization's headers, retried quickly on a transient error
    (``Retry-After`` honoured up to a minute); the 2xx answer, or the last error."""
    base_headers = auth_headers(ctx.secret)
    for attempt in range(1, ATTEMPTS + 1):
        headers = {**base_headers, **signed_headers([ctx.secret["signing_secret"]], message_id,
                                                    body, ctx.now().timestamp())}
        try:
            return outbound.check_status(session(ctx).request(
                method, url, headers=headers, body=body if method != "GET" else None,
                timeout=timeout))
        except TransientError as exc:
            wait = exc.retry_after if exc.retry_after is not None else (
                2.0 ** attempt * random.uniform(0.5, 1.0))
            if attempt == ATTEMPTS or wait > MAX_INLINE_WAIT:
                raise
            ctx.sleep(wait)
    raise AssertionError("unreachable")
