"""Text that PostgreSQL cannot hold: the NUL character.

A ``text`` or ``jsonb`` value with U+0000 makes PostgreSQL raise, so input carrying one is refused
before it reaches a query (collection keeps such messages, with U+FFFD in its place). JSON can
only spell a NUL as the escape ``\\u0000`` (a raw control character is invalid JSON), so a body
without that escape needs no walk.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.http import (
    HttpRequest,
    HttpResponse,
    HttpResponseBadRequest,
    JsonResponse,
    QueryDict,
)

NUL_ESCAPE = b"\\u0000"
NUL_MESSAGE = "Text must not contain the NUL character (\\u0000)."


def contains_nul(value: Any) -> bool:
    """Whether a string, or any key or string inside parsed JSON, holds a NUL."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(contains_nul(key) or contains_nul(item) for key, item in value.items())
    if isinstance(value, list | tuple):
        return any(contains_nul(item) for item in value)
    return False


def body_contains_nul(raw: bytes, parsed: Any) -> bool:
    """``contains_nul`` of a JSON body, walked only when its text has the escape."""
    return NUL_ESCAPE in raw and contains_nul(parsed)


class RefuseNulMiddleware:
    """Refuses a NUL in the path, the query string or a form field of a page or API request
    with ``400`` (``{"code": "invalid_text"}`` under ``/api/``), before a view passes it to a
    query. (A JSON body is the API parser's to check: ``cdp_site.api.parsers``.)

    Listed after the collection and decision middleware, which answer their own paths (and
    keep or refuse a NUL there themselves).
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        query = request.META.get("QUERY_STRING", "")
        if ("\x00" in request.path_info or ("%00" in query and _has_nul(request.GET))
                or (request.method == "POST" and _is_form(request) and _has_nul(request.POST))):
            if request.path_info.startswith("/api/"):
                return JsonResponse({"code": "invalid_text", "message": NUL_MESSAGE}, status=400)
            return HttpResponseBadRequest(NUL_MESSAGE, content_type="text/plain")
        return self.get_response(request)


_FORMS = ("application/x-www-form-urlencoded", "multipart/form-data")


def _is_form(request: HttpRequest) -> bool:
    return request.content_type in _FORMS  # the CSRF check reads such a body anyway


def _has_nul(data: QueryDict) -> bool:
    return any(contains_nul(name) or contains_nul(values) for name, values in data.lists())
