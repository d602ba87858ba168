"""Calculated attributes in the API (profiles.calculated.api.views)."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from cdp_site.api.serializers import ErrorSerializer  # noqa: F401 (the shared component)
from profiles.models import CalculatedAttribute


class CalculatedAttributeSerializer(serializers.ModelSerializer):
    value_type = serializers.SerializerMethodField(
        help_text="The field type of its values in audience rules (int, number, string, date).")

    class Meta:
        model = CalculatedAttribute
        fields = ["name", "description", "aggregate", "event", "where", "property",
                  "window_days", "active", "value_type", "status", "progress", "error",
                  "revision", "backfill_started_at", "backfill_finished_at", "computed_at",
                  "created_at", "updated_at"]
        read_only_fields = fields

    def get_value_type(self, obj: CalculatedAttribute) -> str:
        return obj.value_type()


class CalculatedAttributeWriteSerializer(serializers.Serializer):
    """What a client may send (validated by profiles.calculated.attributes.save_attribute)."""

    name = serializers.CharField(help_text="Letters, digits, _ or - (e.g. 90_day_revenue).")
    description = serializers.CharField(required=False, allow_blank=True)
    aggregate = serializers.ChoiceField(choices=CalculatedAttribute.Aggregate.choices)
    event = serializers.CharField(help_text="Event name ('page' for page views).")
    where = serializers.ListField(child=serializers.DictField(), required=False,
                                  help_text="Property conditions, as in an audience event "
                                            "rule: {property, op, value[, type]}.")
    property = serializers.CharField(required=False, allow_blank=True)
    window_days = serializers.IntegerField(min_value=1, max_value=3650)
    active = serializers.BooleanField(required=False)


def error_body(exc: Any) -> dict[str, Any]:
    body = {"code": exc.code, "message": exc.message}
    if exc.attr:
        body["field"] = exc.attr
    return body
