"""Collection: streams, the raw store, failed events, and what the stream explorer keeps.

The raw store (`RawEvent`) is a PostgreSQL table partitioned by month of ``received_at`` and,
within each month, by account, so a per-account retention drops whole partitions
(``profiles.partitions``). Django does not manage that table: migration 0002 creates it.
"""

from __future__ import annotations

from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.utils import timezone

from cdp_site.models import Account, AccountScopedManager, AccountScopedModel

STREAM_NAME_MAX = 100


class Stream(AccountScopedModel):
    """A named flow of events (`default`, `web`, `crm_users`, `app_divert`)."""

    name = models.SlugField(max_length=STREAM_NAME_MAX)
    description = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["account", "name"], name="stream_unique_name")
        ]

    def __str__(self) -> str:
        return self.name


class RawEvent(models.Model):
    """One message exactly as received. Append-only; written with one INSERT per request
    (or COPY for bulk) by ``profiles.collect``, never through ``save()``."""

    id = models.BigAutoField(primary_key=True)  # the table's real key is (id, account, time)
    account = models.ForeignKey(Account, on_delete=models.DO_NOTHING, related_name="+",
                                db_constraint=False)
    stream = models.CharField(max_length=STREAM_NAME_MAX)
    message_id = models.CharField(max_length=200)
    type = models.CharField(max_length=32, blank=True)
    event = models.CharField(max_length=200, blank=True)
    user_id = models.CharField(max_length=300, blank=True)
    anonymous_id = models.CharField(max_length=300, blank=True)
    received_at = models.DateTimeField()
    sent_at = models.DateTimeField(null=True)
    event_at = models.DateTimeField()
    source = models.CharField(max_length=32)
    write_key_id = models.BigIntegerField(null=True)
    message = models.JSONField()
    warnings = models.JSONField(null=True)

    objects = AccountScopedManager()

    class Meta:
        managed = False
        db_table = "profiles_rawevent"
        ordering = ["-received_at", "-id"]

    def __str__(self) -> str:
        return f"{self.stream}/{self.message_id}"


class MessageId(models.Model):
    """Message ids seen in the last days: the same account and message id is stored once."""

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="+")
    message_id = models.CharField(max_length=200)
    seen_at = models.DateTimeField()

    objects = AccountScopedManager()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["account", "message_id"], name="message_id_unique")
        ]
        indexes = [models.Index(fields=["seen_at"], name="message_id_seen")]

    def __str__(self) -> str:
        return self.message_id


class FailedEvent(models.Model):
    """A message that could not be accepted (or later, processed), with the reason and the raw
    body (truncated), so nothing a client sent disappears without a trace. The account is
    empty when the write key itself was missing or unknown (only operators see those)."""

    account = models.ForeignKey(
        Account, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    stream = models.CharField(max_length=STREAM_NAME_MAX, blank=True)
    received_at = models.DateTimeField(default=timezone.now)
    source = models.CharField(max_length=32)
    stage = models.CharField(max_length=16, default="collect")  # collect | process
    code = models.CharField(max_length=64)
    reason = models.TextField()
    body = models.TextField(blank=True)
    body_truncated = models.BooleanField(default=False)
    line = models.PositiveIntegerField(null=True, blank=True)
    message_id = models.CharField(max_length=200, blank=True)
    key_prefix = models.CharField(max_length=16, blank=True)
    raw_event_id = models.BigIntegerField(null=True, blank=True)
    remote_addr = models.GenericIPAddressField(null=True, blank=True)

    objects = AccountScopedManager()

    BODY_LIMIT = 64 * 1024

    class Meta:
        ordering = ["-received_at", "-id"]
        indexes = [
            models.Index(fields=["account", "stream", "-received_at"], name="failed_stream_time"),
            models.Index(fields=["-received_at"], name="failed_time"),
        ]

    def __str__(self) -> str:
        return f"{self.code}: {self.reason[:60]}"


class StreamHourlyCount(AccountScopedModel):
    """Events per stream and hour: the ingress graph and account usage read these."""

    stream = models.CharField(max_length=STREAM_NAME_MAX)
    hour = models.DateTimeField()
    events = models.BigIntegerField(default=0)
    last_message_at = models.DateTimeField(null=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["account", "stream", "hour"], name="hourly_unique")
        ]
        ordering = ["hour"]

    def __str__(self) -> str:
        return f"{self.stream} {self.hour:%Y-%m-%d %H}h: {self.events}"


class RawKey(AccountScopedModel):
    """A key seen in a stream's messages, kept up to date incrementally by the aggregator."""

    stream = models.CharField(max_length=STREAM_NAME_MAX)
    key = models.CharField(max_length=500)
    predicted_type = models.CharField(max_length=16, default="string")
    type_counts = models.JSONField(default=dict)
    first_seen = models.DateTimeField()
    last_seen = models.DateTimeField()
    times_seen = models.BigIntegerField(default=0)
    # k smallest 64-bit hashes of the values seen (KMV sketch): approximate distinct count.
    sketch = ArrayField(models.BigIntegerField(), default=list)
    samples = models.JSONField(default=list)
    times_used_by_mappings = models.PositiveIntegerField(default=0)
    hidden = models.BooleanField(default=False)

    class Meta:
        ordering = ["key"]
        constraints = [
            models.UniqueConstraint(fields=["account", "stream", "key"], name="raw_key_unique")
        ]

    def __str__(self) -> str:
        return f"{self.stream}.{self.key}"


class TrackingPlan(AccountScopedModel):
    """A JSON Schema for one event name of a stream (Segment Protocols, mParticle data plans).
    ``allow`` records violations on the event; ``block`` sends it to failed events."""

    class Mode(models.TextChoices):
        ALLOW = "allow"
        BLOCK = "block"

    stream = models.CharField(max_length=STREAM_NAME_MAX)
    event = models.CharField(max_length=200, help_text="Event name (track) or message type.")
    schema = models.JSONField()
    mode = models.CharField(max_length=8, choices=Mode.choices, default=Mode.ALLOW)
    enabled = models.BooleanField(default=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["stream", "event"]
        constraints = [
            models.UniqueConstraint(fields=["account", "stream", "event"], name="plan_unique")
        ]

    def __str__(self) -> str:
        return f"{self.stream}/{self.event} ({self.mode})"


class ViolationCount(AccountScopedModel):
    """Tracking plan violations per stream, event name and day."""

    stream = models.CharField(max_length=STREAM_NAME_MAX)
    event = models.CharField(max_length=200)
    day = models.DateField()
    violations = models.BigIntegerField(default=0)
    blocked = models.BigIntegerField(default=0)

    class Meta:
        ordering = ["-day"]
        constraints = [
            models.UniqueConstraint(fields=["account", "stream", "event", "day"],
                                    name="violation_unique")
        ]

    def __str__(self) -> str:
        return f"{self.stream}/{self.event} {self.day}: {self.violations}"


class AccountNotice(AccountScopedModel):
    """Something the account's Admins must be told (quota reached, retention dropped data)."""

    kind = models.CharField(max_length=64)
    message = models.TextField()
    created_at = models.DateTimeField(default=timezone.now)
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.kind}: {self.message[:60]}"


class AggregationCursor(models.Model):
    """How far a background aggregator has read the raw store (not customer data)."""

    name = models.CharField(max_length=64, primary_key=True)
    last_id = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.name} @ {self.last_id}"
