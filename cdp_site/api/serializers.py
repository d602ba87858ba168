from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from rest_framework import serializers

from cdp_site.models import (
    AccessToken,
    Account,
    AuditEvent,
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

    class Meta:
        model = AccessToken
        fields = [
            "id", "prefix", "masked", "description", "roles", "expires_in_days", "expires_at",
            "enabled", "allowed_networks", "status", "created_by", "created_at", "last_used_at",
            "revoked_at",
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
    user = serializers.CharField(
        source="user.username", help_text="Username or email of an existing user."
    )
    email = serializers.EmailField(source="user.email", read_only=True)
    roles = serializers.SlugRelatedField(
        slug_field="code", queryset=Role.objects.all(), many=True
    )

    class Meta:
        model = Membership
        fields = ["id", "user", "email", "roles", "created_at"]
        read_only_fields = ["created_at"]


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
