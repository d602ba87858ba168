"""Sign-in throttling (django-axes).

Wrong passwords are counted per user name and per client address (behind the proxies of
``STRATA_TRUSTED_PROXY_HOPS``, as everywhere): ``STRATA_SIGNIN_FAILURES`` of either locks it
out for ``STRATA_SIGNIN_COOLOFF_MINUTES``, during which even the right password is refused
with ``429``: ``{"code": "too_many_attempts", "message"}`` to an API or JSON client, a page
to a browser. A success resets the user's count.
"""

from __future__ import annotations

from typing import Any

from axes.backends import AxesStandaloneBackend
from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template.response import TemplateResponse

from cdp_site.client import client_ip

STATUS = 429


class SignInThrottleBackend(AxesStandaloneBackend):
    """Axes' backend, first in ``AUTHENTICATION_BACKENDS``: refuses a locked-out user name or
    address. A sign-in without a request (a shell, ``Client.login`` in a test) has no client
    to count, so it goes on to the model backend unthrottled; every web sign-in has one."""

    def authenticate(self, request: HttpRequest | None, username: str | None = None,
                     password: str | None = None, **kwargs: Any) -> Any:
        if request is None:
            return None
        return super().authenticate(request, username, password, **kwargs)


def axes_client_ip(request: HttpRequest) -> str:
    """``AXES_CLIENT_IP_CALLABLE``: the address the rest of Strata sees."""
    return client_ip(request) or ""


def _minutes() -> int:
    cooloff = settings.AXES_COOLOFF_TIME
    return max(1, int(cooloff.total_seconds() // 60)) if cooloff is not None else 0


def lockout_response(request: HttpRequest, original_response: HttpResponse | None = None,
                     credentials: dict[str, Any] | None = None) -> HttpResponse:
    """``AXES_LOCKOUT_CALLABLE``: ``429``, JSON for the API, a page for a browser."""
    message = (f"Too many failed sign-ins from this address or for this user: try again in "
               f"{_minutes()} minutes.")
    retry_after = str(_minutes() * 60)
    wants_json = (request.path_info.startswith("/api/")
                  or "application/json" in request.META.get("HTTP_ACCEPT", ""))
    if wants_json:
        response: HttpResponse = JsonResponse(
            {"code": "too_many_attempts", "message": message}, status=STATUS)
    else:
        response = TemplateResponse(request, "cdp_site/locked_out.html",
                                    {"message": message, "title": "Too many attempts"},
                                    status=STATUS).render()
    response["Retry-After"] = retry_after
    return response
