"""Secrets at rest: one MultiFernet over ``STRATA_CONNECTOR_KEYS`` (newest first). The first
key encrypts; every key decrypts, so a new key can be put in front and the old ones dropped
once ``rotate_connector_keys`` has re-encrypted every authorization."""

from __future__ import annotations

import json
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from connectors.errors import PermanentError


def fernet() -> MultiFernet:
    keys = list(getattr(settings, "STRATA_CONNECTOR_KEYS", []))
    if not keys:
        raise ImproperlyConfigured(
            "STRATA_CONNECTOR_KEYS is empty: set one or more Fernet keys (newest first) to "
            "store connector authorizations.")
    return MultiFernet([Fernet(key.encode() if isinstance(key, str) else key) for key in keys])


def encrypt(secret: dict[str, Any]) -> str:
    return fernet().encrypt(json.dumps(secret, sort_keys=True).encode()).decode()


def decrypt(token: str) -> dict[str, Any]:
    try:
        data = fernet().decrypt(token.encode())
    except InvalidToken:
        raise PermanentError("The authorization cannot be decrypted with the configured keys.",
                             code="authorization_undecryptable") from None
    value: dict[str, Any] = json.loads(data)
    return value


def rotate(token: str) -> str:
    """The same secret under the newest key."""
    return fernet().rotate(token.encode()).decode()
