"""Serializers of the profiles API: shapes only; the work is in
profiles.explorer.streams/plans/usage."""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

from rest_framework import serializers

from profiles.explorer.aggregate import estimate_distinct
from profiles.explorer.streams import COMMON_SHARE, key_share
from profiles.models import (
    STREAM_NAME_MAX,
    AccountNotice,
    FailedEvent,
    RawEvent,
    RawKey,
    Stream,
    TrackingPlan,
)

PREVIEW_CHARS = 300


class StreamSerializer(serializers.ModelSerializer):
    last_message_at = serializers.DateTimeField(read_only=True, allow_null=True)
    events_24h = serializers.IntegerField(read_only=True)

    class Meta:
        model = Stream
        fields = ["id", "name", "description", "created_at", "last_message_at", "events_24h"]
        read_only_fields = ["id", "created_at"]


class StreamCreateSerializer(serializers.Serializer):
    name = serializers.SlugField(max_length=STREAM_NAME_MAX)
    description = serializers.CharField(max_length=300, required=False, allow_blank=True)


class RawKeySerializer(serializers.ModelSerializer):
    unique_values = serializers.SerializerMethodField(
        help_text="Approximate number of distinct values (KMV sketch; exact below 256)."
    )
    share = serializers.SerializerMethodField(
        help_text="Share of the stream's events that carried the key (0 to 1)."
    )
    common = serializers.SerializerMethodField(
        help_text=f"Seen in at least {COMMON_SHARE:.0%} of the stream's events."
    )

    class Meta:
        model = RawKey
        fields = [
            "id", "stream", "key", "predicted_type", "type_counts", "first_seen", "last_seen",
            "times_seen", "unique_values", "share", "common", "times_used_by_mappings", "hidden",
        ]
        read_only_fields = fields

    def get_unique_values(self, raw_key: RawKey) -> int:
        return estimate_distinct(raw_key.sketch)

    def get_share(self, raw_key: RawKey) -> float:
        return round(key_share(raw_key), 4)

    def get_common(self, raw_key: RawKey) -> bool:
        return key_share(raw_key) >= COMMON_SHARE


class RawKeyDetailSerializer(RawKeySerializer):
    class Meta(RawKeySerializer.Meta):
        fields = [*RawKeySerializer.Meta.fields, "samples"]
        read_only_fields = fields


class RawKeyUpdateSerializer(serializers.Serializer):
    hidden = serializers.BooleanField()


class RawEventSerializer(serializers.ModelSerializer):
    class Meta:
        model = RawEvent
        fields = [
            "id", "message_id", "type", "event", "user_id", "anonymous_id", "received_at",
            "sent_at", "event_at", "source", "message", "warnings",
        ]
        read_only_fields = fields


class LatestEventsSerializer(serializers.Serializer):
    results = RawEventSerializer(many=True)
    last_id = serializers.IntegerField(
        allow_null=True, help_text="Pass as after_id on the next poll."
    )


class IngressBucketSerializer(serializers.Serializer):
    start = serializers.CharField(help_text="ISO 8601, in the account's time zone.")
    events = serializers.IntegerField()


class IngressSerializer(serializers.Serializer):
    stream = serializers.CharField()
    period = serializers.CharField()
    bucket = serializers.CharField()
    timezone = serializers.CharField(help_text="The account's; day and week buckets start at "
                                               "its midnight (weeks on Monday).")
    start = serializers.CharField()
    end = serializers.CharField()
    total = serializers.IntegerField()
    buckets = IngressBucketSerializer(many=True)


class ViolationRowSerializer(serializers.Serializer):
    event = serializers.CharField()
    violations = serializers.IntegerField()
    blocked = serializers.IntegerField()


class ViolationSummarySerializer(serializers.Serializer):
    stream = serializers.CharField()
    days = serializers.IntegerField()
    events = ViolationRowSerializer(many=True)


class FailedEventSerializer(serializers.ModelSerializer):
    body_preview = serializers.SerializerMethodField()

    class Meta:
        model = FailedEvent
        fields = [
            "id", "received_at", "stream", "source", "stage", "code", "reason", "message_id",
            "line", "body_preview", "body_truncated", "raw_event_id",
        ]
        read_only_fields = fields

    def get_body_preview(self, failed: FailedEvent) -> str:
        return failed.body[:PREVIEW_CHARS]


class FailedEventDetailSerializer(FailedEventSerializer):
    class Meta(FailedEventSerializer.Meta):
        fields = [*FailedEventSerializer.Meta.fields, "body", "key_prefix", "remote_addr"]
        read_only_fields = fields


class TrackingPlanSerializer(serializers.ModelSerializer):
    stream = serializers.SlugField(max_length=STREAM_NAME_MAX)
    schema = serializers.JSONField(help_text="A JSON Schema (draft 2020-12) for the message.")

    class Meta:
        model = TrackingPlan
        fields = ["id", "stream", "event", "schema", "mode", "enabled", "updated_at"]
        read_only_fields = ["id", "updated_at"]

    def validate_event(self, value: str) -> str:
        if not value.strip():
            raise serializers.ValidationError("Name the event (or message type).")
        return value


class NoticeSerializer(serializers.ModelSerializer):
    class Meta:
        model = AccountNotice
        fields = ["id", "kind", "message", "created_at", "resolved_at"]
        read_only_fields = fields


class UsageMonthSerializer(serializers.Serializer):
    month = serializers.CharField()
    events = serializers.IntegerField()


class UsageDaySerializer(serializers.Serializer):
    day = serializers.DateField()
    events = serializers.IntegerField()


class UsageStreamSerializer(serializers.Serializer):
    stream = serializers.CharField()
    events = serializers.IntegerField()


class UsageSerializer(serializers.Serializer):
    quota = serializers.IntegerField(allow_null=True)
    month_start = serializers.DateTimeField()
    resets_at = serializers.DateTimeField()
    events_this_month = serializers.IntegerField()
    percent_used = serializers.FloatField(allow_null=True)
    months = UsageMonthSerializer(many=True)
    days = UsageDaySerializer(many=True)
    streams = UsageStreamSerializer(many=True)
    notices = NoticeSerializer(many=True)


def ingress_data(stream: str, series: Any) -> dict[str, Any]:
    """The series as the serializer's input: times in the account's zone."""
    zone = ZoneInfo(series.timezone)

    def local(moment: Any) -> str:
        return moment.astimezone(zone).isoformat()

    return {
        "stream": stream, "period": series.period, "bucket": series.bucket,
        "timezone": series.timezone, "start": local(series.start), "end": local(series.end),
        "total": series.total,
        "buckets": [{"start": local(start), "events": n} for start, n in series.buckets],
    }


def usage_data(report: Any) -> dict[str, Any]:
    """The report as the serializer's input."""
    return {
        "quota": report.quota, "month_start": report.month_start,
        "resets_at": report.resets_at, "events_this_month": report.events_this_month,
        "percent_used": report.percent_used,
        "months": [{"month": month, "events": n} for month, n in report.months],
        "days": [{"day": day, "events": n} for day, n in report.days],
        "streams": [{"stream": stream, "events": n} for stream, n in report.streams],
        "notices": report.notices,
    }
