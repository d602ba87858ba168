"""Serializers of the audiences API: shapes only; validation of rules is audiences.editing's."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from rest_framework import serializers

from audiences.editing import rule_text
from audiences.models import Audience
from cdp_site.api.serializers import ErrorSerializer  # noqa: F401 (re-exported: one component)
from profiles.api.serializers import ProfileAudienceSerializer  # noqa: F401 (one component)


class AudienceSerializer(serializers.ModelSerializer):
    text = serializers.SerializerMethodField(help_text="The rule in FilterQL text form.")
    created_by = serializers.SlugRelatedField[User](slug_field="username", read_only=True)

    class Meta:
        model = Audience
        fields = ["slug", "name", "description", "api_accessible", "rule", "text",
                  "depends_on", "time_relative", "version", "status", "progress", "error",
                  "size", "computed_at", "archived", "created_by", "created_at", "updated_at"]
        read_only_fields = fields

    def get_text(self, audience: Audience) -> str | None:
        return rule_text(audience.rule)


class AudienceWriteSerializer(serializers.Serializer):
    """Create (name and a rule or text required) or edit (any subset)."""

    name = serializers.CharField(max_length=200)
    slug = serializers.SlugField(max_length=100, required=False)
    description = serializers.CharField(required=False, allow_blank=True)
    api_accessible = serializers.BooleanField(required=False)
    archived = serializers.BooleanField(required=False)
    rule = serializers.JSONField(required=False, help_text="The rule JSON (docs/audiences.md).")
    text = serializers.CharField(required=False, trim_whitespace=False,
                                 help_text='Or the rule as FilterQL text: FILTER AND(...).')


class RuleInputSerializer(serializers.Serializer):
    rule = serializers.JSONField(required=False)
    text = serializers.CharField(required=False, trim_whitespace=False)
    slug = serializers.SlugField(required=False, help_text="The audience being edited "
                                 "(checks that the rule does not include it).")


class ValidateResultSerializer(serializers.Serializer):
    valid = serializers.BooleanField()
    rule = serializers.JSONField()
    text = serializers.CharField(allow_null=True)
    estimated_size = serializers.IntegerField()


class SizePointSerializer(serializers.Serializer):
    at = serializers.DateTimeField()
    size = serializers.IntegerField()


class SizeSerializer(serializers.Serializer):
    size = serializers.IntegerField(allow_null=True)
    status = serializers.CharField()
    progress = serializers.FloatField()
    computed_at = serializers.DateTimeField(allow_null=True)
    error = serializers.CharField(allow_blank=True)
    history = SizePointSerializer(many=True)


class MemberSerializer(serializers.Serializer):
    profile_id = serializers.IntegerField()
    since = serializers.DateTimeField()
    # DRF's metaclass takes declared fields out of the class: this does not replace
    # Serializer.fields, which the stubs see.
    fields = serializers.DictField(  # type: ignore[assignment]
        help_text="Field values, PII masked without pii.view.")


def member_data(rows: list[Any], policy: Any) -> list[dict[str, Any]]:
    """Members as the reader may see them (``rows``: memberships with their profile)."""
    return [{"profile_id": m.profile_id, "since": m.since,
             "fields": policy.fields(m.profile.field_values or {})} for m in rows]


class StepSerializer(serializers.Serializer):
    path = serializers.CharField(help_text="The node's JSON path in the rule ($, and[1]…).")
    kind = serializers.CharField(help_text="and | or | not | field | attribute | event | "
                                 "audience | consent")
    # a declared field, taken out of the class by DRF's metaclass (the stubs see Field.label)
    label = serializers.CharField(help_text="The condition as text.")  # type: ignore[assignment]
    result = serializers.BooleanField(help_text="The node's verdict for the profile.")
    name = serializers.CharField(help_text="The field, attribute, event, audience or purpose.")
    value = serializers.JSONField(allow_null=True, help_text="The profile's value for it (a "
                                  "field's value, PII masked without pii.view; the number of "
                                  "matching events; membership; consent).")
    has_value = serializers.BooleanField()
    children = serializers.ListField(child=serializers.DictField(),
                                     help_text="and / or / not: their nodes, the same shape.")


class ExplanationSerializer(serializers.Serializer):
    audience = serializers.CharField()
    profile_id = serializers.IntegerField()
    as_of = serializers.DateTimeField()
    member = serializers.BooleanField(help_text="Whether the profile is a stored member.")
    since = serializers.DateTimeField(allow_null=True)
    result = serializers.BooleanField(help_text="The rule's verdict now (the tree's root).")
    text = serializers.CharField(help_text="The rule as FilterQL text.")
    tree = StepSerializer()
