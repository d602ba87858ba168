"""Connector API shapes. Secrets are write-only: an authorization is read back as its name,
kind, base URL and the names of its secret parts; the signing secret Strata generates is in
the creation answer only."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from connectors.models import Authorization, ConnectorSettings, Job, JobLogEntry, JobRun


class AuthorizationSerializer(serializers.ModelSerializer[Authorization]):
    class Meta:
        model = Authorization
        fields = ["id", "name", "kind", "base_url", "secret_parts", "created_at", "updated_at"]
        read_only_fields = fields


class AuthorizationCreateSerializer(serializers.Serializer[Any]):
    name = serializers.CharField(max_length=200)
    kind = serializers.ChoiceField(choices=Authorization.Kind.choices)
    base_url = serializers.URLField(max_length=500, required=False, allow_blank=True,
                                    default="")
    secret = serializers.DictField(required=False, default=dict, write_only=True,
                                   help_text="headers, bearer_token, basic_username, "
                                             "basic_password (http); dsn (postgres).")


class AuthorizationCreatedSerializer(AuthorizationSerializer):
    signing_secret = serializers.CharField(
        allow_null=True, help_text="Shown once: the Standard Webhooks secret (whsec_…) that "
                                   "signs every call made with this authorization.")

    class Meta(AuthorizationSerializer.Meta):
        fields = [*AuthorizationSerializer.Meta.fields, "signing_secret"]
        read_only_fields = fields


class SecretReplaceSerializer(serializers.Serializer[Any]):
    secret = serializers.DictField(write_only=True)
    new_signing_secret = serializers.BooleanField(default=False)


class JobSerializer(serializers.ModelSerializer[Job]):
    authorization: serializers.PrimaryKeyRelatedField[Authorization] = (
        serializers.PrimaryKeyRelatedField(read_only=True))
    authorization_name = serializers.CharField(source="authorization.name", read_only=True,
                                               default=None)

    class Meta:
        model = Job
        fields = ["id", "name", "kind", "authorization", "authorization_name", "config",
                  "schedule", "interval_seconds", "cron", "state", "next_run_at",
                  "last_run_at", "consecutive_errors", "last_error", "created_at"]
        read_only_fields = fields


class JobWriteSerializer(serializers.Serializer[Any]):
    name = serializers.CharField(max_length=200)
    kind = serializers.CharField(max_length=64)
    authorization = serializers.IntegerField(required=False, allow_null=True, default=None)
    config = serializers.JSONField()
    schedule = serializers.ChoiceField(choices=Job.Schedule.choices, default="interval")
    interval_seconds = serializers.IntegerField(default=300, min_value=1)
    cron = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")


class JobRunSerializer(serializers.ModelSerializer[JobRun]):
    class Meta:
        model = JobRun
        fields = ["id", "started_at", "finished_at", "outcome", "added", "removed", "omitted",
                  "errors"]
        read_only_fields = fields


class JobLogEntrySerializer(serializers.ModelSerializer[JobLogEntry]):
    class Meta:
        model = JobLogEntry
        fields = ["id", "at", "kind", "message", "counts", "run"]
        read_only_fields = fields


class TestConnectionSerializer(serializers.Serializer[Any]):
    kind = serializers.CharField(max_length=64)
    authorization = serializers.IntegerField(required=False, allow_null=True, default=None)
    config = serializers.JSONField()


class TestResultSerializer(serializers.Serializer[Any]):
    ok = serializers.BooleanField()
    message = serializers.CharField()
    code = serializers.CharField(required=False)


class ConnectorSettingsSerializer(serializers.ModelSerializer[ConnectorSettings]):
    class Meta:
        model = ConnectorSettings
        fields = ["outbound_allowlist", "alert_webhook_url"]


class KindSerializer(serializers.Serializer[Any]):
    key = serializers.CharField()
    name = serializers.CharField()
    description = serializers.CharField()
    authorization_kind = serializers.CharField(allow_null=True)
    config_schema = serializers.JSONField()
