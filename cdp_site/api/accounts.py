"""``/api/v1/accounts/``: the accounts a caller may see (anyone: their own), and the site
operator's accounts work (create, update, enable, disable, quotas). Not an account-scoped view:
accounts are the scope, and the queryset is the caller's accounts, never all of them unless the
caller is the operator."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.db.models import QuerySet
from django.utils.text import slugify
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, mixins, status, viewsets
from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.response import Response

from cdp_site import accounts
from cdp_site.api.serializers import AccountCreateSerializer, AccountSerializer
from cdp_site.api.viewsets import ActorMixin
from cdp_site.authentication import request_actor
from cdp_site.models import Account, Membership
from cdp_site.tenancy import actor_for_user, client_ip

if TYPE_CHECKING:
    from rest_framework.request import Request
    from rest_framework.views import APIView

    from cdp_site.tenancy import Actor


class OperatorOnly(exceptions.PermissionDenied):
    default_detail = "Only the site operator may do this."
    default_code = "operator_only"


def caller_is_operator(request: Request) -> bool:
    actor = request_actor(request)
    if actor is not None and actor.token is not None:
        return actor.is_site_operator
    return bool(getattr(request.user, "is_superuser", False))


class MemberReadsOperatorWrites(BasePermission):
    """Anyone signed in (session or token) reads their own accounts; writes are the operator's."""

    def has_permission(self, request: Request, view: APIView) -> bool:
        if request.user is None or not request.user.is_authenticated:
            raise exceptions.NotAuthenticated()
        if request.method not in SAFE_METHODS and not caller_is_operator(request):
            raise OperatorOnly()
        return True


def visible_accounts(request: Request) -> QuerySet[Account]:
    """The caller's accounts: a token's own, a member's enabled ones; all for the operator."""
    if caller_is_operator(request):
        return Account.objects.all()
    actor = request_actor(request)
    if actor is not None and actor.token is not None:
        return Account.objects.filter(pk=actor.account.pk)
    return Account.objects.filter(
        enabled=True,
        pk__in=Membership.objects.filter(user=request.user).values("account_id"),  # type: ignore[misc]
    )


def _operator_actor(request: Request, account: Account) -> Actor:
    """The operator acting on an account (the audit log's actor)."""
    actor = request_actor(request)
    if actor is not None and actor.token is not None:
        return actor
    operator = actor_for_user(request.user, account, client_ip(request._request))  # type: ignore[arg-type]
    assert operator is not None
    return operator


class AccountViewSet(
    ActorMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin,
    viewsets.GenericViewSet[Account],
):
    """Accounts by ``aid``: list and read your own; the site operator creates and updates any
    (including ``enabled`` and ``monthly_event_quota``)."""

    serializer_class = AccountSerializer
    permission_classes = [MemberReadsOperatorWrites]
    lookup_field = "aid"
    queryset = Account.objects.none()

    def get_queryset(self) -> QuerySet[Account]:
        if getattr(self, "swagger_fake_view", False):
            return Account.objects.none()
        return visible_accounts(self.request).order_by("name", "id")

    @extend_schema(request=AccountCreateSerializer, responses={201: AccountSerializer})
    def create(self, request: Request) -> Response:
        serializer = AccountCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        values: dict[str, Any] = dict(serializer.validated_data)
        name = values.pop("name")
        slug = values.pop("slug", None) or slugify(name)[:100] or "account"
        account = accounts.create_account(
            name=name, slug=slug, actor=_operator_actor(request, Account(name=name)), **values
        )
        return Response(AccountSerializer(account).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=AccountSerializer, responses=AccountSerializer)
    def partial_update(self, request: Request, aid: str | None = None) -> Response:
        account = self.get_object()
        serializer = AccountSerializer(account, data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        accounts.update_account_settings(
            account, actor=_operator_actor(request, account), **serializer.validated_data
        )
        return Response(AccountSerializer(account).data)
