"""API for tenancy and access: the current actor, the account, roles, members, tokens,
write keys and the audit log. Thin views: the work is in cdp_site.access/accounts."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django_filters import rest_framework as filters
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.request import Request
from rest_framework.response import Response

from cdp_site import access, accounts, invitations
from cdp_site.api.accounts import visible_accounts
from cdp_site.api.errors import APIError
from cdp_site.api.serializers import (
    AccessTokenSerializer,
    AccessTokenUpdateSerializer,
    AccountSerializer,
    AuditEventSerializer,
    InvitationSerializer,
    MembershipSerializer,
    MembershipUpdateSerializer,
    NewAccessTokenSerializer,
    NewWriteKeySerializer,
    RoleSerializer,
    WriteKeySerializer,
)
from cdp_site.api.viewsets import AccountAPIView, AccountScopedViewSet, ActorMixin
from cdp_site.hooks import hooks
from cdp_site.models import AccessToken, AuditEvent, Invitation, Membership, Role, WriteKey
from cdp_site.tenancy import Actor, actor_for_user, client_ip


class MeSerializer(serializers.Serializer[Any]):
    account = serializers.DictField()
    principal = serializers.CharField()
    roles = serializers.ListField(child=serializers.CharField())
    permissions = serializers.ListField(child=serializers.CharField())


class DashboardSerializer(serializers.Serializer[Any]):
    account = serializers.CharField()
    members = serializers.IntegerField()
    active_tokens = serializers.IntegerField()
    write_keys = serializers.IntegerField()
    # from settings.STRATA_DASHBOARD_HOOKS (profiles.explorer.dashboard.api_figures)
    streams = serializers.IntegerField(required=False)
    events_24h = serializers.IntegerField(required=False)
    failed_events_24h = serializers.IntegerField(required=False)
    profiles = serializers.IntegerField(required=False)
    processing = serializers.DictField(
        required=False, help_text="pending, oldest_pending_at, lag_seconds, lag_warning, "
        "events_last_minute, events_per_minute (last hour), events_last_hour, failed_last_hour, "
        "throughput (per minute), worker")


class MeView(AccountAPIView):
    """Who is asking: the account, roles and permissions in force for this request."""

    action_permissions = {"get": None}

    @extend_schema(responses=MeSerializer)
    def get(self, request: Request) -> Response:
        actor = self.actor
        return Response({
            "account": {"id": actor.account.pk, "aid": actor.account.aid,
                        "name": actor.account.name, "slug": actor.account.slug},
            "principal": actor.label,
            "roles": sorted(actor.role_codes),
            "permissions": sorted(actor.permissions),
        })


class DashboardView(AccountAPIView):
    """The account at a glance (every role may see it); the apps add their figures through
    ``settings.STRATA_DASHBOARD_HOOKS`` (profiles: data and processing)."""

    action_permissions = {"get": "dashboard.view"}

    @extend_schema(responses=DashboardSerializer)
    def get(self, request: Request) -> Response:
        account = self.actor.account
        payload: dict[str, Any] = {
            "account": account.name,
            "members": Membership.objects.for_account(account).count(),
            "active_tokens": AccessToken.objects.for_account(account)
            .filter(enabled=True, revoked_at__isnull=True).count(),
            "write_keys": WriteKey.objects.for_account(account)
            .filter(revoked_at__isnull=True).count(),
        }
        for hook in hooks("STRATA_DASHBOARD_HOOKS"):
            payload.update(hook(account))
        return Response(payload)


class AccountView(AccountAPIView):
    """The current account's settings (Admins)."""

    action_permissions = {"get": "admin.view", "patch": "admin.edit"}

    @extend_schema(responses=AccountSerializer)
    def get(self, request: Request) -> Response:
        return Response(AccountSerializer(self.actor.account).data)

    @extend_schema(request=AccountSerializer, responses=AccountSerializer)
    def patch(self, request: Request) -> Response:
        serializer = AccountSerializer(self.actor.account, data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        account = accounts.update_account_settings(
            self.actor.account, actor=self.actor, **serializer.validated_data
        )
        return Response(AccountSerializer(account).data)


class RoleViewSet(ActorMixin, viewsets.GenericViewSet[Role]):
    """The eleven roles and the permissions each grants (not account data: same everywhere)."""

    serializer_class = RoleSerializer
    queryset = Role.objects.none()
    pagination_class = None
    action_permissions = {"list": "dashboard.view"}

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        roles = Role.objects.prefetch_related("permissions").order_by("name")
        return Response(RoleSerializer(roles, many=True).data)


class AccessTokenFilter(filters.FilterSet):
    status = filters.ChoiceFilter(
        choices=[("active", "active"), ("revoked", "revoked"), ("disabled", "disabled")],
        method="filter_status",
    )

    class Meta:
        model = AccessToken
        fields = ["enabled"]

    def filter_status(
        self, queryset: QuerySet[AccessToken], name: str, value: str
    ) -> QuerySet[AccessToken]:
        if value == "revoked":
            return queryset.filter(revoked_at__isnull=False)
        if value == "disabled":
            return queryset.filter(enabled=False, revoked_at__isnull=True)
        return queryset.filter(enabled=True, revoked_at__isnull=True)


class AccessTokenViewSet(
    AccountScopedViewSet[AccessToken], mixins.ListModelMixin, mixins.RetrieveModelMixin
):
    """Access tokens of the account (Admins). The secret is in the create response only."""

    model = AccessToken
    serializer_class = AccessTokenSerializer
    permission_feature = "admin"
    filterset_class = AccessTokenFilter

    def scope_queryset(self, queryset: QuerySet[AccessToken]) -> QuerySet[AccessToken]:
        return queryset.select_related("created_by", "account").prefetch_related("roles").order_by(
            "-created_at", "-id"
        )

    @extend_schema(request=AccessTokenSerializer, responses={201: NewAccessTokenSerializer})
    def create(self, request: Request) -> Response:
        serializer = AccessTokenSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        actor = self._minting_actor(request, data.get("account", {}).get("aid"))
        new = access.create_access_token(
            account=actor.account, actor=actor,
            description=data.get("description", ""), roles=data["roles"],
            expires_in_days=data.get("expires_in_days") or None,
            allowed_networks=data.get("allowed_networks", []),
            enabled=data.get("enabled", True), site_operator=data.get("site_operator", False),
        )
        body = NewAccessTokenSerializer(new.obj).data
        body["token"] = new.secret
        return Response(body, status=status.HTTP_201_CREATED)

    def _minting_actor(self, request: Request, named: str | None) -> Actor:
        """Who mints the token, acting in the account the request names: a session must name
        it (a token never lands in whichever account the session last switched to); a token
        may name only its own. Either way the minter needs admin.edit there."""
        actor = self.actor
        if actor.token is None:
            if not named:
                raise APIError("account_required", "Name the account the token is for: "
                               '"account": "<aid>" (GET /api/v1/accounts/ lists yours).')
            account = visible_accounts(request).filter(aid=named).first()
            minter = None if account is None else actor_for_user(
                request.user, account, client_ip(request._request)  # type: ignore[arg-type]
            )
        else:
            minter = actor if named in (None, actor.account.aid) else None
        if minter is None:
            raise APIError("account_not_allowed", "You cannot create tokens in that account.",
                           403)
        if not minter.has("admin.edit"):
            raise APIError("permission_denied", "Your roles do not allow this (admin.edit).", 403)
        return minter

    @extend_schema(request=AccessTokenUpdateSerializer, responses=AccessTokenSerializer)
    def partial_update(self, request: Request, pk: str | None = None) -> Response:
        token = self.get_object()
        serializer = AccessTokenUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        access.update_access_token(token, actor=self.actor, **serializer.validated_data)
        return Response(AccessTokenSerializer(token).data)

    @extend_schema(responses={204: None})
    def destroy(self, request: Request, pk: str | None = None) -> Response:
        """Revoke the token: refused from the next request on; kept for the audit trail."""
        access.revoke_access_token(self.get_object(), actor=self.actor)
        return Response(status=status.HTTP_204_NO_CONTENT)


class WriteKeyViewSet(
    AccountScopedViewSet[WriteKey], mixins.ListModelMixin, mixins.RetrieveModelMixin
):
    """Write keys of the account (Admins): public keys for sending events and asking decisions."""

    model = WriteKey
    serializer_class = WriteKeySerializer
    permission_feature = "admin"

    def scope_queryset(self, queryset: QuerySet[WriteKey]) -> QuerySet[WriteKey]:
        return queryset.select_related("created_by").order_by("-created_at", "-id")

    @extend_schema(request=WriteKeySerializer, responses={201: NewWriteKeySerializer})
    def create(self, request: Request) -> Response:
        serializer = WriteKeySerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        new = access.create_write_key(
            account=self.actor.account, actor=self.actor, name=serializer.validated_data["name"],
            stream=serializer.validated_data.get("stream", "default"),
        )
        body = NewWriteKeySerializer(new.obj).data
        body["key"] = new.secret
        return Response(body, status=status.HTTP_201_CREATED)

    @extend_schema(responses={204: None})
    def destroy(self, request: Request, pk: str | None = None) -> Response:
        access.revoke_write_key(self.get_object(), actor=self.actor)
        return Response(status=status.HTTP_204_NO_CONTENT)


class MembershipViewSet(
    AccountScopedViewSet[Membership], mixins.ListModelMixin, mixins.RetrieveModelMixin
):
    """Members of the account and their roles (Admins)."""

    model = Membership
    serializer_class = MembershipSerializer
    permission_feature = "admin"

    def scope_queryset(self, queryset: QuerySet[Membership]) -> QuerySet[Membership]:
        return queryset.select_related("user").prefetch_related("roles").order_by(
            "user__username", "id"
        )

    @extend_schema(request=InvitationSerializer, responses={202: InvitationSerializer})
    def create(self, request: Request) -> Response:
        """Invite an email address: the same 202 whether or not the address has a user
        anywhere (no existence oracle); the person accepts through the emailed link."""
        serializer = InvitationSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        invitation = invitations.invite(
            account=self.actor.account, actor=self.actor,
            email=serializer.validated_data["email"], roles=serializer.validated_data["roles"],
        )
        return Response(InvitationSerializer(invitation).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=MembershipUpdateSerializer, responses=MembershipSerializer)
    def partial_update(self, request: Request, pk: str | None = None) -> Response:
        membership = self.get_object()
        serializer = MembershipUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        accounts.set_member_roles(
            membership, actor=self.actor, roles=serializer.validated_data["roles"]
        )
        return Response(MembershipSerializer(membership).data)

    @extend_schema(responses={204: None})
    def destroy(self, request: Request, pk: str | None = None) -> Response:
        accounts.remove_member(self.get_object(), actor=self.actor)
        return Response(status=status.HTTP_204_NO_CONTENT)


class InvitationViewSet(
    AccountScopedViewSet[Invitation], mixins.ListModelMixin, mixins.RetrieveModelMixin
):
    """Invitations of the account (Admins): ``POST /api/v1/memberships/`` makes them; DELETE
    revokes a pending one."""

    model = Invitation
    serializer_class = InvitationSerializer
    permission_feature = "admin"

    def scope_queryset(self, queryset: QuerySet[Invitation]) -> QuerySet[Invitation]:
        return queryset.select_related("invited_by").prefetch_related("roles").order_by(
            "-created_at", "-id"
        )

    @extend_schema(responses={204: None})
    def destroy(self, request: Request, pk: str | None = None) -> Response:
        invitations.revoke(self.get_object(), actor=self.actor)
        return Response(status=status.HTTP_204_NO_CONTENT)


class AuditEventFilter(filters.FilterSet):
    since = filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    until = filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = AuditEvent
        fields = ["action", "target_type"]


class AuditEventViewSet(
    AccountScopedViewSet[AuditEvent], mixins.ListModelMixin, mixins.RetrieveModelMixin
):
    """The account's audit log, newest first (Admins)."""

    model = AuditEvent
    serializer_class = AuditEventSerializer
    permission_feature = "admin"
    filterset_class = AuditEventFilter

    def scope_queryset(self, queryset: QuerySet[AuditEvent]) -> QuerySet[AuditEvent]:
        return queryset.order_by("-created_at", "-id")

