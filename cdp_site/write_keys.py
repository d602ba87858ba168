"""A write key as a request presents it, and what each way of failing answers.

Write keys (``swk_``) are the public keys of sites and apps: they may only send events and ask
for decisions. Every public path (collection, decisions, the Personalize Edge API) finds the
key the same way and answers a missing, unknown, revoked or disabled key the same way, so the
one table of problems lives here, beside the keys themselves (``cdp_site.access``).
"""

from __future__ import annotations

import base64
import binascii
from typing import TYPE_CHECKING, Any

# Models-free (the access log of ``manage.py serve`` cuts keys with ``key_prefix`` before the
# apps are loaded).
VISIBLE_PREFIX_LENGTH = 12  # "stk_" + 8 characters

if TYPE_CHECKING:
    from django.http import HttpRequest

# check_write_key's problem -> (status, code, message) of the answer.
KEY_PROBLEMS: dict[str, tuple[int, str, str]] = {
    "missing": (401, "missing_write_key",
                "No write key: send it as Basic auth (the key as user name), a Bearer or "
                "X-API-Key header, writeKey in the body, or the writeKey query parameter."),
    "unknown": (401, "invalid_write_key", "The write key is not known."),
    "revoked": (401, "invalid_write_key", "The write key has been revoked."),
    "disabled": (401, "invalid_write_key", "The write key is disabled."),
    "account_disabled": (403, "account_disabled", "The write key's account is disabled."),
    "mixed": (400, "mixed_write_keys",
              "The batch's messages name different write keys: send one batch per key, or the "
              "key in a header."),
}


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
