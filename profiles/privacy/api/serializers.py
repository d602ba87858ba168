"""Shapes of the privacy request API."""

from __future__ import annotations

from rest_framework import serializers

from profiles.models import ConsentPurpose, PrivacyRequest


class PrivacyRequestSerializer(serializers.ModelSerializer[PrivacyRequest]):
    requested_by = serializers.CharField(source="requested_by_label", read_only=True)
    value_hint = serializers.CharField(read_only=True, help_text="The identifier, masked.")

    class Meta:
        model = PrivacyRequest
        fields = ["id", "kind", "field", "value_hint", "suppress", "state", "result", "error",
                  "profile_id", "requested_by", "created_at", "started_at", "finished_at"]
        read_only_fields = fields


class PrivacyRequestCreateSerializer(serializers.Serializer):
    """What a request is made with (validated by profiles.privacy.requests)."""

    kind = serializers.ChoiceField(choices=PrivacyRequest.Kind.choices)
    value = serializers.CharField(help_text="The identifier value the person gave.")
    field = serializers.CharField(required=False, allow_blank=True,
                                  help_text="The identifier field (empty: any).")
    suppress = serializers.BooleanField(required=False, default=True,
                                        help_text="A delete also suppresses later events.")


class ConsentPurposeSerializer(serializers.ModelSerializer[ConsentPurpose]):
    class Meta:
        model = ConsentPurpose
        fields = ["name", "description", "granted_by_default", "created_at"]
        read_only_fields = ["created_at"]


class UnknownPurposeSerializer(serializers.Serializer):
    purpose = serializers.CharField()
    events = serializers.IntegerField(help_text="Choices dropped, over the last 30 days.")
    last_day = serializers.DateField()
