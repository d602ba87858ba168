"""Every API error has the same shape: {"code": ..., "message": ...} (+ "errors" per field)."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.db import DataError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.views.csrf import csrf_failure as django_csrf_failure
from django.views.decorators.csrf import csrf_exempt
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from cdp_site.access import AccessError


class APIError(exceptions.APIException):
    """Raise from services/views to answer with a chosen status and code."""

    def __init__(self, code: str, message: str, status_code: int = 400) -> None:
        super().__init__(detail=message, code=code)
        self.status_code = status_code
        self.error_code = code


def _first_message(detail: Any) -> str:
    if isinstance(detail, dict):
        for key, value in detail.items():
            inner = _first_message(value)
            return inner if key in ("non_field_errors", "detail") else f"{key}: {inner}"
    if isinstance(detail, list) and detail:
        return _first_message(detail[0])
    return str(detail)


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, AccessError):
        return Response({"code": exc.code, "message": exc.message}, status=exc.status)
    if isinstance(exc, DataError):
        # A value the database cannot hold (past an integer column's range, a NUL, a date out
        # of range) that validation let through: the client's input, so 400, not 500. The
        # statement failed, and its transaction with it. (#18 finding 3)
        return Response({"code": "invalid_value",
                         "message": "A value is out of the range its field can hold."},
                        status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, APIError):
        code = exc.error_code
    elif isinstance(exc, exceptions.ValidationError):
        code = "invalid"
    else:
        codes = exc.get_codes() if isinstance(exc, exceptions.APIException) else None
        code = codes if isinstance(codes, str) else "error"
    body: dict[str, Any] = {"code": code, "message": _first_message(response.data)}
    if isinstance(exc, exceptions.ValidationError) and isinstance(response.data, dict):
        body["errors"] = response.data
    response.data = body
    return response


def json_error(code: str, message: str, status_code: int) -> JsonResponse:
    return JsonResponse({"code": code, "message": message}, status=status_code)


# Paths whose answers are JSON, errors included (the management, collection and decision APIs).
API_PREFIXES = ("/api/", "/v1/", "/collect/", "/ofrep/", "/personalize/")


def is_api_path(path: str) -> bool:
    return path.startswith(API_PREFIXES)


@csrf_exempt  # the catch-all of /api/: an unknown path is 404 whatever the method
def not_found_view(request: Any, exception: Exception | None = None) -> JsonResponse:
    return json_error("not_found", "Not found.", status.HTTP_404_NOT_FOUND)


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """settings.CSRF_FAILURE_VIEW: a session client's write without its CSRF token is a JSON
    403 under the API (pages keep Django's HTML page)."""
    if is_api_path(request.path):
        return json_error(
            "csrf_failed", f"CSRF verification failed: {reason} Send the csrftoken cookie's "
            "value in the X-CSRFToken header, or use an access token.", 403,
        )
    return django_csrf_failure(request, reason)


def server_error_view(request: Any) -> JsonResponse:
    return json_error("server_error", "Something went wrong on our side.", 500)
