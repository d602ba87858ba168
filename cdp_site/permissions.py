"""One permission class: the view names the permission an action needs; roles decide."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rest_framework import exceptions
from rest_framework.permissions import BasePermission

from cdp_site.authentication import request_actor

if TYPE_CHECKING:
    from rest_framework.request import Request
    from rest_framework.views import APIView


class NoAccount(exceptions.PermissionDenied):
    default_detail = "You are not a member of any account."
    default_code = "no_account"


class HasRolePermission(BasePermission):
    """Fails closed: a view must say which permission each action needs (or None for
    'any signed-in member'), else the request is refused."""

    def has_permission(self, request: Request, view: APIView) -> bool:
        if request.user is None or not request.user.is_authenticated:
            raise exceptions.NotAuthenticated()
        actor = request_actor(request)
        if actor is None:
            raise NoAccount()
        required = view.required_permission(request)  # type: ignore[attr-defined]
        if required is not None and not actor.has(required):
            raise exceptions.PermissionDenied(
                f"Your roles do not allow this ({required}).", code="permission_denied"
            )
        return True
