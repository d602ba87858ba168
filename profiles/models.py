"""Collection: streams, the raw store, failed events, and what the stream explorer keeps;
processing: the schema (fields, mappings, route rules, published versions), profiles,
identifiers, profile events, the identity log and the processing queue.

The raw store (`RawEvent`) is a PostgreSQL table partitioned by month of ``received_at`` and,
within each month, by account, so a per-account retention drops whole partitions
(``profiles.collection.partitions``). Django does not manage that table: migration 0002 creates it.

Rows of the processing models are written by services only (``profiles.schema.drafts``,
``profiles.schema.versions``, ``profiles.processing.steps``, ``profiles.processing.identity``),
mostly with bulk SQL: nothing hides in save().
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import GinIndex
from django.db import models
from django.db.models.functions import Lower
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
    (or COPY for bulk) by ``profiles.collection.store``, never through ``save()``."""

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


# --------------------------------------------------------------------------- schema (issue 4)
#
# The draft schema is the editable Field, Mapping and RouteRule rows; publishing copies them
# into an immutable SchemaVersion snapshot (JSON), which is what processing reads
# (``profiles.schema.compiled``). Only the services in ``profiles.schema.drafts`` (editing) and
# ``profiles.schema.versions`` (publish, revert) write these rows.

FIELD_NAME_MAX = 100
FIELD_TYPE_CHOICES = [(t, t) for t in (
    "string", "int", "number", "bool", "date", "[]string",
    "map[string]int", "map[string]number", "map[string]string", "map[string]date",
)]
MERGE_OPERATOR_CHOICES = [(o, o) for o in (
    "latest", "oldest", "sum", "count", "min", "max", "merge", "capped", "mapsum", "mapmax",
    "mapmin", "latestmap",
)]


class Field(AccountScopedModel):
    """A profile attribute of the draft schema: type, merge operator, identifier settings."""

    name = models.CharField(max_length=FIELD_NAME_MAX)
    description = models.CharField(max_length=500, blank=True)
    type = models.CharField(max_length=32, choices=FIELD_TYPE_CHOICES, default="string")
    merge_operator = models.CharField(max_length=16, choices=MERGE_OPERATOR_CHOICES,
                                      default="latest")
    capacity = models.PositiveIntegerField(
        null=True, blank=True, help_text="Most values kept by a set or map (empty: default).")
    keep_days = models.PositiveIntegerField(
        null=True, blank=True, help_text="Values older than this stop counting (empty: forever).")
    is_identifier = models.BooleanField(default=False)
    identifier_rank = models.PositiveSmallIntegerField(
        null=True, blank=True, help_text="1 is the strongest identifier.")
    identifier_capacity = models.PositiveIntegerField(
        null=True, blank=True, help_text="How many values of this identifier one profile holds.")
    is_pii = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["account", "name"], name="field_unique_name")
        ]

    def __str__(self) -> str:
        return self.name


class Mapping(AccountScopedModel):
    """How a stream's events give a field a value: an expression, applied when the guard (if
    any) is true."""

    field = models.ForeignKey(Field, on_delete=models.CASCADE, related_name="mappings")
    stream = models.CharField(max_length=STREAM_NAME_MAX)
    expression = models.TextField()
    guard = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["stream", "field__name", "id"]
        indexes = [models.Index(fields=["account", "stream"], name="mapping_stream")]

    def __str__(self) -> str:
        return f"{self.field.name} <- {self.stream}: {self.expression[:60]}"


class RouteRule(AccountScopedModel):
    """Moves matching events of one stream to another before mapping (higher priority first)."""

    name = models.CharField(max_length=200, blank=True)
    input_stream = models.CharField(max_length=STREAM_NAME_MAX)
    expression = models.TextField()
    output_stream = models.CharField(max_length=STREAM_NAME_MAX)
    priority = models.IntegerField(default=0)
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["input_stream", "-priority", "id"]

    def __str__(self) -> str:
        return f"{self.input_stream} -> {self.output_stream}: {self.expression[:60]}"


class SchemaVersion(AccountScopedModel):
    """A published, immutable schema: the draft's fields, mappings and route rules as JSON.
    The account's live schema is its highest number."""

    number = models.PositiveIntegerField()
    snapshot = models.JSONField()
    note = models.CharField(max_length=500, blank=True)
    reverted_from = models.PositiveIntegerField(
        null=True, blank=True, help_text="The earlier version this one restores, if any.")
    published_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
        related_name="+")
    published_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-number"]
        constraints = [
            models.UniqueConstraint(fields=["account", "number"], name="schema_version_unique")
        ]

    def __str__(self) -> str:
        return f"v{self.number}"


# --------------------------------------------------------------------------- profiles


class Profile(AccountScopedModel):
    """The unified person. ``states`` holds each field's merge-operator state (enough to merge
    two profiles without their events); ``field_values`` the public values, for queries (GIN
    indexed: ``field_values @> '{"tier": "gold"}'``). A profile merged into another keeps its
    row with ``merged_into`` set and empty states; it resolves to the survivor."""

    id = models.BigAutoField(primary_key=True)
    states = models.JSONField(default=dict)
    field_values = models.JSONField(default=dict)
    first_seen = models.DateTimeField()
    last_seen = models.DateTimeField()
    event_count = models.PositiveBigIntegerField(default=0)
    conflicts = models.PositiveIntegerField(default=0)
    compactions = models.PositiveIntegerField(default=0)
    identifier_count = models.PositiveIntegerField(default=0)
    size = models.PositiveIntegerField(default=0, help_text="Bytes of merged state.")
    merged_into = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL,
                                    related_name="+", db_index=False)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [
            GinIndex(fields=["field_values"], opclasses=["jsonb_path_ops"],
                     name="profile_values_gin"),
            models.Index(fields=["account", "-last_seen"], name="profile_last_seen"),
            models.Index(fields=["merged_into"], name="profile_merged_into",
                         condition=models.Q(merged_into__isnull=False)),
        ]

    def __str__(self) -> str:
        return f"profile {self.pk}"


class Identifier(AccountScopedModel):
    """A value of an identifier field pointing at one profile. Compacted ones (``active``
    false) no longer resolve; they stay as history."""

    id = models.BigAutoField(primary_key=True)
    field = models.CharField(max_length=FIELD_NAME_MAX)
    value = models.CharField(max_length=256)
    profile = models.ForeignKey(Profile, on_delete=models.CASCADE, related_name="identifiers")
    first_seen = models.DateTimeField()
    last_seen = models.DateTimeField()
    active = models.BooleanField(default=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["account", "field", "value"],
                                    condition=models.Q(active=True),
                                    name="identifier_unique_active"),
        ]
        indexes = [
            models.Index(fields=["profile", "field"], name="identifier_profile"),
            # emails are looked up case-insensitively (profiles.identifiers)
            models.Index(models.F("account"), Lower("value"), name="identifier_email_lower",
                         condition=models.Q(value__contains="@")),
        ]

    def __str__(self) -> str:
        return f"{self.field}={self.value}"


class ProfileEvent(AccountScopedModel):
    """An event attributed to a profile: timelines and behavioural rules read these."""

    id = models.BigAutoField(primary_key=True)
    profile = models.ForeignKey(Profile, on_delete=models.CASCADE, related_name="events",
                                db_index=False)
    raw_event_id = models.BigIntegerField()
    stream = models.CharField(max_length=STREAM_NAME_MAX)
    event = models.CharField(max_length=200, blank=True)
    at = models.DateTimeField()
    properties = models.JSONField(default=dict)  # the event's mapped values, by field
    # The event's own properties by key path, bounded (profiles.processing.event_properties):
    # audience event conditions read them where no mapped value has the name. Never shown.
    own_properties = models.JSONField(default=dict, db_default=models.Value({}, models.JSONField()))

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [
            models.Index(fields=["profile", "-at"], name="profile_event_timeline"),
            models.Index(fields=["account", "event", "-at"], name="profile_event_name"),
        ]

    def __str__(self) -> str:
        return f"{self.stream}/{self.event or '-'} @ {self.at:%Y-%m-%d %H:%M}"


class IdentityLog(AccountScopedModel):
    """Why identifiers are linked: every merge (with the event that caused it), conflict and
    compaction. ``profile`` is the survivor / the profile concerned; ``other`` the merged-away
    or conflicting profile."""

    class Kind(models.TextChoices):
        MERGE = "merge"
        CONFLICT = "conflict"
        COMPACTION = "compaction"

    id = models.BigAutoField(primary_key=True)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    profile = models.ForeignKey(Profile, on_delete=models.CASCADE, related_name="identity_log")
    other = models.ForeignKey(Profile, null=True, blank=True, on_delete=models.SET_NULL,
                              related_name="+")
    raw_event_id = models.BigIntegerField(null=True, blank=True)
    field = models.CharField(max_length=FIELD_NAME_MAX, blank=True)
    value = models.CharField(max_length=256, blank=True)
    reason = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["other"], name="identity_log_other",
                                condition=models.Q(other__isnull=False))]

    def __str__(self) -> str:
        return f"{self.kind} {self.profile_id}<-{self.other_id or '-'}"


class EventWarning(AccountScopedModel):
    """Something processing skipped on one event while the rest of it applied: a value that
    does not fit its field, an invalid identifier value."""

    id = models.BigAutoField(primary_key=True)
    raw_event_id = models.BigIntegerField()
    stream = models.CharField(max_length=STREAM_NAME_MAX)
    code = models.CharField(max_length=64)
    field = models.CharField(max_length=FIELD_NAME_MAX, blank=True)
    message = models.TextField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["account", "stream", "-created_at"], name="event_warning_stream"),
            models.Index(fields=["raw_event_id"], name="event_warning_raw"),
        ]

    def __str__(self) -> str:
        return f"{self.code}: {self.message[:60]}"


# --------------------------------------------------------------------------- processing queue


class PendingEvent(models.Model):
    """A raw event waiting to be processed. Filled by the statement that stores raw events
    (``collect.dedupe_insert_sql``); a worker deletes the rows it claims inside its processing
    transaction, so a crash puts them back (``profiles.processing.pipeline``)."""

    raw_event_id = models.BigIntegerField(primary_key=True)
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="+",
                                db_constraint=False, db_index=False)
    received_at = models.DateTimeField()

    objects = AccountScopedManager()

    class Meta:
        indexes = [models.Index(fields=["account", "raw_event_id"], name="pending_account")]

    def __str__(self) -> str:
        return f"pending {self.raw_event_id}"


class ProcessingStat(AccountScopedModel):
    """Events processed per account and minute: the dashboard's throughput."""

    minute = models.DateTimeField()
    events = models.BigIntegerField(default=0)
    failed = models.BigIntegerField(default=0)
    seconds = models.FloatField(default=0.0, help_text="Time spent in batches.")

    class Meta:
        ordering = ["-minute"]
        constraints = [
            models.UniqueConstraint(fields=["account", "minute"], name="processing_stat_unique")
        ]

    def __str__(self) -> str:
        return f"{self.minute:%Y-%m-%d %H:%M}: {self.events}"


class ProfileRebuild(AccountScopedModel):
    """Profiles recomputed from the raw store with the live schema
    (``profiles.processing.rebuild``):
    every raw event up to ``last_raw_event_id`` was queued again; progress is how many of them
    are still pending."""

    schema_version = models.ForeignKey(SchemaVersion, null=True, blank=True,
                                       on_delete=models.SET_NULL, related_name="+")
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                                     on_delete=models.SET_NULL, related_name="+")
    last_raw_event_id = models.BigIntegerField(default=0)
    events_total = models.BigIntegerField(default=0)
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]

    def __str__(self) -> str:
        return f"rebuild of {self.events_total} events from {self.started_at:%Y-%m-%d %H:%M}"


# --------------------------------------------------------------------------- consent, calculated


class ProfileConsent(AccountScopedModel):
    """A purpose a profile granted or withheld (``context.consent.categoryPreferences`` of its
    latest event that carried one: the event's own time decides). Audiences' ``consent``
    condition and the decision API read ``granted`` rows; exports check them per purpose."""

    id = models.BigAutoField(primary_key=True)
    profile = models.ForeignKey(Profile, on_delete=models.CASCADE, related_name="consents")
    purpose = models.CharField(max_length=100)
    granted = models.BooleanField()
    at = models.DateTimeField(help_text="Time of the event that set it.")
    raw_event_id = models.BigIntegerField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["profile", "purpose"], name="profile_consent_unique")
        ]
        indexes = [models.Index(fields=["account", "purpose"], name="profile_consent_purpose",
                                condition=models.Q(granted=True))]

    def __str__(self) -> str:
        return f"{self.purpose}={'yes' if self.granted else 'no'}"


class CalculatedAttribute(AccountScopedModel):
    """A windowed aggregate of a profile's events (``90_day_revenue``): ``aggregate`` of
    ``property`` over events named ``event`` whose properties match every ``where`` condition
    (the audience rule's property-condition shape), in the last ``window_days`` days."""

    class Aggregate(models.TextChoices):
        COUNT = "count"
        SUM = "sum"
        AVG = "avg"
        MIN = "min"
        MAX = "max"
        DISTINCT = "distinct", "distinct count"
        MOST_FREQUENT = "most_frequent", "most frequent value"
        FIRST = "first", "first time"
        LAST = "last", "last time"

    name = models.SlugField(max_length=FIELD_NAME_MAX, allow_unicode=False)
    description = models.CharField(max_length=500, blank=True)
    aggregate = models.CharField(max_length=16, choices=Aggregate.choices)
    event = models.CharField(max_length=200, help_text="Event name the aggregate reads.")
    where = models.JSONField(default=list, blank=True,
                             help_text="Property conditions, as in an audience event rule.")
    property = models.CharField(max_length=200, blank=True,
                                help_text="Property aggregated (sum, avg, min, max, distinct, "
                                          "most frequent).")
    window_days = models.PositiveIntegerField(help_text="Events of the last N days count.")
    active = models.BooleanField(default=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                                   on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    computed_at = models.DateTimeField(null=True, blank=True,
                                       help_text="Last full (scheduled) correction.")

    class Status(models.TextChoices):
        PENDING = "pending"
        BACKFILLING = "backfilling"
        READY = "ready"
        FAILED = "failed"

    # The backfill from profile events that a new or edited definition starts
    # (profiles.calculated.attributes): its state, how far it got (0..1) and why it failed.
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    progress = models.FloatField(default=0.0)
    error = models.TextField(blank=True)
    revision = models.PositiveIntegerField(
        default=1, help_text="Bumped by each change of the definition; values computed under "
                             "an older one are replaced by the backfill.")
    backfill_started_at = models.DateTimeField(null=True, blank=True)
    backfill_finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["account", "name"], name="calculated_attribute_unique")
        ]

    def __str__(self) -> str:
        return self.name

    def value_type(self) -> str:
        """The field type (FIELD_TYPE_CHOICES) of its values, for audience rules."""
        return CALCULATED_VALUE_TYPES[self.aggregate]


CALCULATED_VALUE_TYPES = {
    "count": "int", "distinct": "int", "sum": "number", "avg": "number", "min": "number",
    "max": "number", "most_frequent": "string", "first": "date", "last": "date",
}


class AttributeValue(AccountScopedModel):
    """A calculated attribute's value for one profile. ``name`` repeats the attribute's name so
    audience SQL reads ``(profile_id, name, value)`` without a join; ``state`` is what the
    incremental update needs (e.g. per-day buckets); ``expires_at`` is when the value next
    changes by the window sliding alone (the scheduled correction picks those)."""

    id = models.BigAutoField(primary_key=True)
    attribute = models.ForeignKey(CalculatedAttribute, on_delete=models.CASCADE,
                                  related_name="values")
    profile = models.ForeignKey(Profile, on_delete=models.CASCADE, related_name="attributes")
    name = models.CharField(max_length=FIELD_NAME_MAX)
    value = models.JSONField(null=True)
    state = models.JSONField(default=dict)
    updated_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["attribute", "profile"], name="attribute_value_unique")
        ]
        indexes = [
            models.Index(fields=["profile", "name"], name="attribute_value_profile"),
            models.Index(fields=["account", "expires_at"], name="attribute_value_expiry",
                         condition=models.Q(expires_at__isnull=False)),
        ]

    def __str__(self) -> str:
        return f"{self.name}={self.value!r}"


# --------------------------------------------------------------------------- privacy (issue 14)


class PrivacyRequest(AccountScopedModel):
    """A data subject request (``profiles.privacy``): what was asked, with which identifier, by
    whom, how far it got and what came of it. The identifier value is kept only while the
    request waits or runs; once it finishes the row holds its field, a masked hint and the
    profile id (access documents are read by that id), never the value."""

    class Kind(models.TextChoices):
        ACCESS = "access"
        DELETE = "delete"
        SUPPRESS = "suppress"
        UNSUPPRESS = "unsuppress"

    class State(models.TextChoices):
        RECEIVED = "received"
        RUNNING = "running"
        DONE = "done"
        FAILED = "failed"

    kind = models.CharField(max_length=16, choices=Kind.choices)
    field = models.CharField(max_length=FIELD_NAME_MAX, blank=True,
                             help_text="Identifier field the request names (blank: any).")
    value = models.CharField(max_length=256, blank=True,
                             help_text="The identifier value, cleared when the request ends.")
    value_hint = models.CharField(max_length=64, blank=True)
    suppress = models.BooleanField(
        default=True, help_text="A delete also puts the person's identifiers on the "
                                "suppression list, so later events are not collected.")
    state = models.CharField(max_length=16, choices=State.choices, default=State.RECEIVED)
    result = models.JSONField(default=dict, blank=True)
    error = models.CharField(max_length=300, blank=True)
    profile_id = models.BigIntegerField(null=True, blank=True)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                                     on_delete=models.SET_NULL, related_name="+")
    requested_by_label = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["account", "-created_at"], name="privacy_request_time")]

    def __str__(self) -> str:
        return f"{self.kind} request {self.pk} ({self.state})"

    def result_items(self) -> list[tuple[str, object]]:
        """The result's counts, labelled, for pages."""
        return [(key.replace("_", " "), value) for key, value in self.result.items()
                if key not in ("message", "profile_ids", "found")]


class Suppression(AccountScopedModel):
    """An identifier whose events collection drops (``profiles.collection.suppression``), kept
    as ``profiles.identifiers.identifier_hash``. ``subject`` is the hash of the identifier the
    suppress request named: every identifier of that person shares it, so an unsuppress by any
    one of them lifts them all."""

    value_hash = models.CharField(max_length=64)
    bucket = models.PositiveIntegerField(
        default=0, help_text="24-bit checksum of the value: the collection check's prefilter.")
    subject = models.CharField(max_length=64)
    request = models.ForeignKey(PrivacyRequest, null=True, blank=True,
                                on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["account", "value_hash"], name="suppression_unique")
        ]
        indexes = [models.Index(fields=["account", "subject"], name="suppression_subject")]

    def __str__(self) -> str:
        return f"suppressed {self.value_hash[:12]}…"


class SuppressedCount(AccountScopedModel):
    """Events collection dropped for a suppressed identifier, per stream and day."""

    stream = models.CharField(max_length=STREAM_NAME_MAX)
    day = models.DateField()
    events = models.BigIntegerField(default=0)

    class Meta:
        ordering = ["-day", "stream"]
        constraints = [
            models.UniqueConstraint(fields=["account", "stream", "day"],
                                    name="suppressed_count_unique")
        ]

    def __str__(self) -> str:
        return f"{self.stream} {self.day}: {self.events} suppressed"


class ConsentPurpose(AccountScopedModel):
    """A purpose the account asks consent for (analytics, personalization, advertising, email)
    and what no answer means for it. Once an account lists any, consent for other purposes
    in events is counted (``UnknownPurposeCount``) and not stored."""

    name = models.SlugField(max_length=100)
    description = models.CharField(max_length=300, blank=True)
    granted_by_default = models.BooleanField(
        default=False, help_text="What no answer means: granted, or (the default) denied.")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["account", "name"], name="consent_purpose_unique")
        ]

    def __str__(self) -> str:
        return self.name


class UnknownPurposeCount(AccountScopedModel):
    """Consent choices for a purpose the account does not list, per day: shown, not stored."""

    purpose = models.CharField(max_length=100)
    day = models.DateField()
    events = models.BigIntegerField(default=0)

    class Meta:
        ordering = ["-day", "purpose"]
        constraints = [
            models.UniqueConstraint(fields=["account", "purpose", "day"],
                                    name="unknown_purpose_unique")
        ]

    def __str__(self) -> str:
        return f"{self.purpose} {self.day}: {self.events}"
