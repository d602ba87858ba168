"""The client's address, behind the proxies the operator trusts.

Models-free, so settings-time code (the exception reporter, django-axes' address callable)
can import it before the apps are loaded.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest


def client_ip(request: HttpRequest) -> str | None:
    """The peer address. Behind a proxy, set STRATA_TRUSTED_PROXY_HOPS (see docs)."""
    hops = getattr(settings, "STRATA_TRUSTED_PROXY_HOPS", 0)
    if hops:
        forwarded = [p.strip() for p in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
        forwarded = [p for p in forwarded if p]
        if len(forwarded) >= hops:
            return forwarded[-hops]
    address: Any = request.META.get("REMOTE_ADDR")
    return address if isinstance(address, str) else None
