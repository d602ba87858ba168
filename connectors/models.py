"""The connectors app: authorizations (encrypted credentials), jobs (a kind, a configuration,
a schedule, a state, a cursor), their runs, logs and delivered state, and each account's
connector settings (outbound allowlist, alert webhook). Every model derives from
``cdp_site.models.AccountScopedModel``; the work lives in the topic modules."""

from __future__ import annotations

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.utils import timezone

from cdp_site.models import Account, AccountScopedModel


class ConnectorSettings(AccountScopedModel):
    """An account's outbound allowlist (hosts or CIDR networks that may be private or
    loopback: the demo's and the tests' local servers) and where alerts go."""

    account = models.OneToOneField(Account, on_delete=models.CASCADE, related_name="+")
    outbound_allowlist = ArrayField(
        models.CharField(max_length=255), default=list, blank=True,
        help_text="Hosts or CIDR networks outbound calls may reach although they resolve to a "
                  "loopback, private, link-local or metadata address.",
    )
    alert_webhook_url = models.URLField(max_length=500, blank=True,
                                        help_text="Slack-compatible webhook told of failures.")

    def __str__(self) -> str:
        return f"connector settings of {self.account_id}"


class Authorization(AccountScopedModel):
    """Credentials for an external system. Public parts (name, kind, base URL, which secret
    parts exist) are plain; the secret parts are one MultiFernet token (connectors.crypto)."""

    class Kind(models.TextChoices):
        HTTP = "http", "HTTP endpoint"
        POSTGRES = "postgres", "PostgreSQL database"

    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    base_url = models.URLField(max_length=500, blank=True)
    secret = models.TextField(editable=False, help_text="MultiFernet token of the secret parts.")
    secret_parts = models.JSONField(default=list, blank=True,
                                    help_text="Names of the secret parts held (never values).")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                                   on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name", "id"]
        constraints = [models.UniqueConstraint(fields=["account", "name"],
                                               name="authorization_unique_name")]

    def __str__(self) -> str:
        return self.name


class Job(AccountScopedModel):
    """An import, export or enrichment: a kind (connectors.kinds), its configuration, a
    schedule and a state. ``cursor`` is where the next run resumes; it is saved after each
    delivered batch, so a killed worker loses nothing."""

    class State(models.TextChoices):
        RUNNING = "running"
        SLEEPING = "sleeping"
        FAILED = "failed"
        PAUSED = "paused"
        COMPLETED = "completed"

    class Schedule(models.TextChoices):
        INTERVAL = "interval"
        CRON = "cron"
        ONCE = "once"

    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=64)
    authorization = models.ForeignKey(Authorization, null=True, blank=True,
                                      on_delete=models.SET_NULL, related_name="jobs")
    config = models.JSONField(default=dict)
    schedule = models.CharField(max_length=16, choices=Schedule.choices,
                                default=Schedule.INTERVAL)
    interval_seconds = models.PositiveIntegerField(default=300)
    cron = models.CharField(max_length=100, blank=True)
    state = models.CharField(max_length=16, choices=State.choices, default=State.SLEEPING)
    cursor = models.JSONField(default=dict, blank=True)
    next_run_at = models.DateTimeField(null=True, blank=True)
    last_run_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    consecutive_errors = models.PositiveIntegerField(default=0)
    erroring_since = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                                   on_delete=models.SET_NULL, related_name="+")
    creator_sees_pii = models.BooleanField(
        default=False, help_text="Whether whoever created the job (a token, a command) could "
                                 "see PII; a member creator is checked again at each run.")
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name", "id"]
        indexes = [models.Index(fields=["state", "next_run_at"], name="job_due")]

    def __str__(self) -> str:
        return self.name


class JobRun(AccountScopedModel):
    """One run of a job and its counts: the metrics chart."""

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="runs")
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(max_length=16, blank=True)  # completed | error | failed | ...
    added = models.BigIntegerField(default=0)
    removed = models.BigIntegerField(default=0)
    omitted = models.BigIntegerField(default=0)
    errors = models.BigIntegerField(default=0)

    class Meta:
        ordering = ["-started_at", "-id"]
        indexes = [models.Index(fields=["job", "-started_at"], name="job_run_job")]

    def __str__(self) -> str:
        return f"run {self.pk} of {self.job_id}"


class JobLogEntry(AccountScopedModel):
    """What happened to a job, in words a user reads on the job page. Never a secret."""

    class Kind(models.TextChoices):
        STARTED = "started"
        SYNCED = "synced"
        ERROR = "error"
        SLEEPING = "sleeping"
        FAILED = "failed"
        COMPLETED = "completed"
        PAUSED = "paused"
        RESUMED = "resumed"

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="log")
    run = models.ForeignKey(JobRun, null=True, blank=True, on_delete=models.SET_NULL,
                            related_name="+")
    at = models.DateTimeField(default=timezone.now)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    message = models.TextField(blank=True)
    counts = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["job", "-at"], name="job_log_job")]

    def __str__(self) -> str:
        return f"{self.kind} {self.job_id}"


class ExportedMember(AccountScopedModel):
    """A profile an export job has delivered as added (and not since removed): what a later
    consent withdrawal or exit must remove at the destination."""

    id = models.BigAutoField(primary_key=True)
    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="+", db_index=False)
    profile_id = models.BigIntegerField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["job", "profile_id"],
                                               name="exported_member_unique")]

    def __str__(self) -> str:
        return f"{self.profile_id} via {self.job_id}"
