from __future__ import annotations

from typing import Any
from zoneinfo import available_timezones

from django.contrib.auth.models import User
from rest_framework import serializers

from cdp_site.models import (
    AccessToken,
    Account,
    AuditEvent,
    Invitation,
    Membership,
    Permission,
    Role,
    WriteKey,
)


class ErrorSerializer(serializers.Serializer[Any]):
    """The body of every API error (one OpenAPI component, "Error", for all apps)."""

    code = serializers.CharField()
    message = serializers.CharField()
    field = serializers.CharField(required=False, help_text="The field refused, when one was.")


class RoleSerializer(serializers.ModelSerializer[Role]):
    permissions = serializers.SlugRelatedField[Permission](
        slug_field="code", many=True, read_only=True
    )

    class Meta:
        model = Role
        fields = ["code", "name", "abbreviation", "description", "permissions"]


class AccessTokenSerializer(serializers.ModelSerializer[AccessToken]):
    roles = serializers.SlugRelatedField(
        slug_field="code", queryset=Role.objects.all(), many=True, allow_empty=False
    )
    expires_in_days = serializers.ChoiceField(
        choices=[7, 30, 90, 0], write_only=True, required=False, allow_null=True,
        help_text="7, 30 or 90 days; 0 or null for never.",
    )
    masked = serializers.CharField(read_only=True)
    status = serializers.CharField(read_only=True)
    created_by = serializers.SlugRelatedField[User](slug_field="username", read_only=True)
    account = serializers.CharField(
        source="account.aid", required=False, max_length=32,
        help_text="The aid of the account the token acts in (GET /api/v1/accounts/). Required "
        "when signed in with a session; a token may only name its own account.",
    )

    class Meta:
        model = AccessToken
        fields = [
            "id", "prefix", "masked", "account", "description", "roles", "expires_in_days",
            "expires_at", "enabled", "allowed_networks", "site_operator", "status", "created_by",
            "created_at", "last_used_at", "revoked_at",
        ]
        read_only_fields = ["prefix", "expires_at", "created_at", "last_used_at", "revoked_at"]
        extra_kwargs = {"description": {"required": False}}


class AccessTokenUpdateSerializer(serializers.Serializer[Any]):
    description = serializers.CharField(max_length=200, required=False)
    enabled = serializers.BooleanField(required=False)
    allowed_networks = serializers.ListField(
        child=serializers.CharField(max_length=64), required=False
    )


class NewAccessTokenSerializer(AccessTokenSerializer):
    token = serializers.CharField(read_only=True, help_text="The secret, shown only now.")

    class Meta(AccessTokenSerializer.Meta):
        fields = [*AccessTokenSerializer.Meta.fields, "token"]


class WriteKeySerializer(serializers.ModelSerializer[WriteKey]):
    masked = serializers.CharField(read_only=True)
    created_by = serializers.SlugRelatedField[User](slug_field="username", read_only=True)

    class Meta:
        model = WriteKey
        fields = [
            "id", "prefix", "masked", "name", "stream", "enabled", "created_by", "created_at",
            "last_used_at", "revoked_at",
        ]
        read_only_fields = ["prefix", "enabled", "created_at", "last_used_at", "revoked_at"]


class NewWriteKeySerializer(WriteKeySerializer):
    key = serializers.CharField(read_only=True, help_text="The secret, shown only now.")

    class Meta(WriteKeySerializer.Meta):
        fields = [*WriteKeySerializer.Meta.fields, "key"]


class MembershipSerializer(serializers.ModelSerializer[Membership]):
    user = serializers.CharField(source="user.username", read_only=True)
    email = serializers.EmailField(source="user.email", read_only=True)
    roles = serializers.SlugRelatedField(
        slug_field="code", queryset=Role.objects.all(), many=True
    )

    class Meta:
        model = Membership
        fields = ["id", "user", "email", "roles", "created_at"]
        read_only_fields = ["created_at"]


class InvitationSerializer(serializers.ModelSerializer[Invitation]):
    """Adding a member: an invitation emailed to the address, whether or not it has a user."""

    email = serializers.EmailField(max_length=254)
    roles = serializers.SlugRelatedField(
        slug_field="code", queryset=Role.objects.all(), many=True
    )
    status = serializers.CharField(read_only=True, help_text="pending, accepted, revoked or "
                                   "expired")
    invited_by = serializers.SlugRelatedField[User](slug_field="username", read_only=True)

    class Meta:
        model = Invitation
        fields = ["id", "email", "roles", "status", "invited_by", "created_at", "expires_at",
                  "accepted_at", "revoked_at"]
        read_only_fields = ["created_at", "expires_at", "accepted_at", "revoked_at"]


class MembershipUpdateSerializer(serializers.Serializer[Any]):
    roles = serializers.SlugRelatedField(
        slug_field="code", queryset=Role.objects.all(), many=True
    )


class AuditEventSerializer(serializers.ModelSerializer[AuditEvent]):
    class Meta:
        model = AuditEvent
        fields = [
            "id", "created_at", "action", "actor_label", "target_type", "target_id",
            "target_label", "changes", "ip_address",
        ]


class AccountSerializer(serializers.ModelSerializer[Account]):
    class Meta:
        model = Account
        fields = ["id", "aid", "slug", "created_at", *Account.SETTINGS_FIELDS]
        read_only_fields = ["id", "aid", "slug", "created_at"]
        extra_kwargs = {
            "enabled": {"help_text": "The site operator's only: a disabled account's members, "
                        "tokens and write keys are refused."},
            "monthly_event_quota": {"help_text": "The site operator's only. Events accepted per "
                                    "calendar month; null for no limit."},
        }

    def validate_timezone(self, value: str) -> str:
        if value not in available_timezones():
            raise serializers.ValidationError(f"{value!r} is not an IANA time zone.")
        return value


class AccountCreateSerializer(AccountSerializer):
    """What the site operator gives a new account; the slug comes from the name if omitted."""

    slug = serializers.SlugField(max_length=100, required=False)

    class Meta(AccountSerializer.Meta):
        read_only_fields = ["id", "aid", "created_at"]
