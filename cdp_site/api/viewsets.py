"""The one base class for account data in the API.

It makes scoping and permission checks impossible to forget: the queryset always comes from
``model.objects.for_account(actor.account)`` (subclasses may only narrow it through
``scope_queryset``; overriding ``get_queryset`` is a TypeError at import time), so an object of
another account is simply not found (404, never 403). Each action must name the permission it
needs, or the request is refused.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from django.core.exceptions import ImproperlyConfigured
from rest_framework import exceptions, viewsets
from rest_framework.views import APIView

from cdp_site.authentication import request_actor
from cdp_site.models import AccountScopedModel

if TYPE_CHECKING:
    from django.db.models import QuerySet
    from rest_framework.request import Request

    from cdp_site.tenancy import Actor

_Model = TypeVar("_Model", bound=AccountScopedModel)

DEFAULT_ACTION_PERMISSIONS = {
    "list": "view",
    "retrieve": "view",
    "create": "edit",
    "update": "edit",
    "partial_update": "edit",
    "destroy": "delete",
}


class ActorMixin(APIView):
    """Views that act for an actor in an account: ``self.actor``, ``required_permission``."""

    permission_feature: ClassVar[str | None] = None
    # action/method -> "view" | "edit" | "delete" | a full permission code | None (any member)
    action_permissions: ClassVar[dict[str, str | None]] = {}

    @property
    def actor(self) -> Actor:
        actor = request_actor(self.request)
        assert actor is not None, "permission class lets no request without an actor through"
        return actor

    def required_permission(self, request: Request) -> str | None:
        # The action routed for this request's method (``request`` may be a clone with
        # another method, as when OPTIONS asks what POST would accept).
        method_name = request.method or ""
        method = method_name.lower()
        if method == "options":
            return None  # metadata; it lists only the actions the actor's roles allow
        action_map: dict[str, str] | None = getattr(self, "action_map", None)
        action: str | None
        if action_map is not None:
            action = action_map.get(method)
        else:
            action = "get" if method == "head" else method
            if not callable(getattr(self, action, None)):
                action = None
        if action is None:
            raise exceptions.MethodNotAllowed(method_name)
        mapping = {**DEFAULT_ACTION_PERMISSIONS, **self.action_permissions}
        if action not in mapping:
            raise ImproperlyConfigured(f"{type(self).__name__}.{action} names no permission")
        level = mapping[action]
        if level is None or "." in level:
            return level
        if self.permission_feature is None:
            raise ImproperlyConfigured(f"{type(self).__name__} has no permission_feature")
        return f"{self.permission_feature}.{level}"


class AccountScopedViewSet(ActorMixin, viewsets.GenericViewSet[_Model]):
    model: type[_Model]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "get_queryset" in cls.__dict__:
            raise TypeError(
                f"{cls.__name__} overrides get_queryset; narrow the account's rows in "
                "scope_queryset instead, so scoping cannot be lost."
            )

    def get_queryset(self) -> QuerySet[_Model]:
        if getattr(self, "swagger_fake_view", False):  # schema generation has no actor
            return self.model.objects.none()
        return self.scope_queryset(self.model.objects.for_account(self.actor.account))

    def scope_queryset(self, queryset: QuerySet[_Model]) -> QuerySet[_Model]:
        return queryset


class AccountAPIView(ActorMixin, APIView):
    """A plain view acting in the actor's account (no queryset of its own)."""
