"""Audiences: a named rule over profiles (``audiences.rules``), who is in it now
(``AudienceMembership``), every entry and exit (``MembershipChange``: what exports and the
decision API react to), and its size over time (``AudienceSize``).

Rows are written by services (``audiences.membership``), mostly with bulk SQL."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models
from django.utils import timezone

from audiences.rules import dependencies, is_time_relative
from cdp_site.models import Account, AccountScopedModel
from profiles.models import Profile


class Audience(AccountScopedModel):
    """A rule over profiles. ``depends_on`` lists what the rule reads (``field:x``,
    ``attribute:x``, ``event:x``, ``audience:slug``, ``consent:p``), so the real-time step
    re-evaluates only audiences a change touches; ``time_relative`` marks rules whose result
    changes as time passes (relative dates, event windows), recomputed on a schedule."""

    class Status(models.TextChoices):
        COMPUTING = "computing"
        READY = "ready"
        FAILED = "failed"

    slug = models.SlugField(max_length=100)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    api_accessible = models.BooleanField(
        default=False, help_text="Visible to sites: decision API, profile API with a write key, "
                                 "the JS tag.")
    rule = models.JSONField()
    depends_on = models.JSONField(default=list, blank=True)
    time_relative = models.BooleanField(default=False)
    version = models.PositiveIntegerField(default=1, help_text="Bumped on each rule change.")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.COMPUTING)
    progress = models.FloatField(default=0.0, help_text="0..1 while computing.")
    error = models.TextField(blank=True)
    size = models.BigIntegerField(null=True, blank=True, help_text="None until first computed.")
    computed_at = models.DateTimeField(null=True, blank=True)
    archived = models.BooleanField(default=False)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                                   on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name", "id"]
        constraints = [
            models.UniqueConstraint(fields=["account", "slug"], name="audience_unique_slug")
        ]

    def __str__(self) -> str:
        return self.name

    def save(self, *args: Any, **kwargs: Any) -> None:
        """``depends_on`` and ``time_relative`` always follow the rule."""
        self.depends_on = dependencies(self.rule)
        self.time_relative = is_time_relative(self.rule)
        update_fields = kwargs.get("update_fields")
        if update_fields is not None and "rule" in update_fields:
            kwargs["update_fields"] = {*update_fields, "depends_on", "time_relative"}
        super().save(*args, **kwargs)


class AudienceMembership(AccountScopedModel):
    """A profile in an audience now (a surviving profile: merges move memberships). Written in
    bulk (a full computation inserts a row per member), so no index beyond what reads need (the
    unique (audience, profile) serves lookups by audience) and no foreign key checks in the
    database: a check per row locked every member's profile row (``FOR KEY SHARE``), which
    made a first computation several times slower. Deletes still cascade (the ORM, and
    profiles.processing.rebuild through the relation); only audiences.membership and
    audiences.realtime
    write rows, with ids they just read."""

    id = models.BigAutoField(primary_key=True)
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="+",
                                db_index=False, db_constraint=False)
    audience = models.ForeignKey(Audience, on_delete=models.CASCADE, related_name="memberships",
                                 db_index=False, db_constraint=False)
    profile = models.ForeignKey(Profile, on_delete=models.CASCADE,
                                related_name="audience_memberships", db_index=False,
                                db_constraint=False)
    since = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["audience", "profile"], name="membership_unique")
        ]
        indexes = [models.Index(fields=["profile"], name="membership_profile")]

    def __str__(self) -> str:
        return f"{self.profile_id} in {self.audience_id}"


class MembershipChange(AccountScopedModel):
    """One entry or exit, and what caused it. An append-only log written in bulk: no foreign
    key checks in the database (deleting an audience or an account deletes its rows through
    the ORM) and only the indexes its readers use."""

    class Kind(models.TextChoices):
        ENTRY = "entry"
        EXIT = "exit"

    class Cause(models.TextChoices):
        REALTIME = "realtime", "event (real time)"
        SCHEDULE = "schedule", "scheduled recompute"
        COMPUTE = "compute", "audience computed"
        MERGE = "merge", "profiles merged"
        DELETE = "delete", "profile or audience deleted"

    id = models.BigAutoField(primary_key=True)
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="+",
                                db_index=False, db_constraint=False)
    audience = models.ForeignKey(Audience, on_delete=models.CASCADE, related_name="changes",
                                 db_index=False, db_constraint=False)
    profile_id = models.BigIntegerField(help_text="Kept after the profile is gone.")
    kind = models.CharField(max_length=8, choices=Kind.choices)
    cause = models.CharField(max_length=16, choices=Cause.choices)
    at = models.DateTimeField(default=timezone.now)
    raw_event_id = models.BigIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [
            models.Index(fields=["audience", "-at"], name="membership_change_audience"),
            models.Index(fields=["account", "id"], name="membership_change_feed"),
            models.Index(fields=["profile_id", "-at"], name="membership_change_profile"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.profile_id} {self.audience_id}"


class AudienceSize(AccountScopedModel):
    """The audience's size at a moment (hourly, and after each computation): the size chart."""

    audience = models.ForeignKey(Audience, on_delete=models.CASCADE, related_name="sizes",
                                 db_index=False)
    at = models.DateTimeField()
    size = models.BigIntegerField()

    class Meta:
        ordering = ["audience", "at"]
        indexes = [models.Index(fields=["audience", "at"], name="audience_size_at")]

    def __str__(self) -> str:
        return f"{self.audience_id}@{self.at:%Y-%m-%d %H:%M}: {self.size}"
