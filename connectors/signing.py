"""Standard Webhooks signatures (PROTOCOLS.md, outbound webhooks): headers ``webhook-id``
(the same on every retry of one message), ``webhook-timestamp`` (this attempt) and
``webhook-signature`` (``v1,<base64 HMAC-SHA256 of id.timestamp.body>``)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

from connectors.authorizations import SIGNING_PREFIX


def signature(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    key = base64.b64decode(secret.removeprefix(SIGNING_PREFIX))
    signed = f"{message_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def signed_headers(secrets: list[str], message_id: str, body: bytes,
                   now: float | None = None) -> dict[str, str]:
    """Headers for one attempt; several secrets (a rotation) give several signatures."""
    timestamp = int(now if now is not None else time.time())
    return {
        "Content-Type": "application/json",
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(signature(s, message_id, timestamp, body)
                                      for s in secrets),
    }
