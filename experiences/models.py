"""Experiences: A/B tests (equal split, custom weights or a multi-armed bandit) and segmented
experiences, their variants and goals, phases (a change of split starts a new one; results
are kept per phase), sticky assignments, impressions and conversions, bandit weight history
and result snapshots (for the charts over time).

Rows are written by services (``experiences.lifecycle``, ``experiences.decide``,
``experiences.tracking``, ``experiences.results``), not in save()."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from audiences.models import Audience
from cdp_site.models import Account, AccountScopedModel


class Goal(AccountScopedModel):
    """A conversion event: an event name with property conditions (the audience rule's
    ``where`` shape), from one stream or any (``stream`` blank)."""

    key = models.SlugField(max_length=100)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    event = models.CharField(max_length=200)
    where = models.JSONField(default=list, blank=True)
    stream = models.CharField(max_length=100, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name", "id"]
        constraints = [models.UniqueConstraint(fields=["account", "key"], name="goal_unique_key")]

    def __str__(self) -> str:
        return self.name


class Experience(AccountScopedModel):
    class Type(models.TextChoices):
        AB = "ab", "A/B test"
        SEGMENTED = "segmented", "segmented experience"

    class Distribution(models.TextChoices):
        EQUAL = "equal", "equal split"
        CUSTOM = "custom", "custom weights"
        BANDIT = "bandit", "multi-armed bandit"

    class Status(models.TextChoices):
        DRAFT = "draft"
        ACTIVE = "active"
        PAUSED = "paused"
        COMPLETED = "completed"

    class Target(models.TextChoices):
        EVERYONE = "everyone"
        AUDIENCES = "audiences", "selected audiences"

    class ValueType(models.TextChoices):
        STRING = "string"
        JSON = "json"

    key = models.CharField(max_length=100, help_text="The flag key clients ask for.")
    uid = models.CharField(max_length=16, help_text="Short uid (Personalize experience uid).")
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    type = models.CharField(max_length=16, choices=Type.choices, default=Type.AB)
    distribution = models.CharField(max_length=16, choices=Distribution.choices,
                                    default=Distribution.EQUAL)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.DRAFT)
    value_type = models.CharField(max_length=8, choices=ValueType.choices,
                                  default=ValueType.STRING)
    traffic_allocation = models.FloatField(
        default=1.0, help_text="Share (0..1) of eligible visitors who enter.")
    target = models.CharField(max_length=16, choices=Target.choices, default=Target.EVERYONE)
    target_audiences = models.ManyToManyField(Audience, blank=True, related_name="+")
    goals = models.ManyToManyField(Goal, through="ExperienceGoal", related_name="experiences")
    seed = models.CharField(max_length=100, blank=True,
                            help_text="Hash seed (GrowthBook's); the uid when blank.")
    hash_version = models.PositiveSmallIntegerField(default=2)
    phase = models.PositiveIntegerField(default=0, help_text="Current phase number (0: none).")
    bandit_interval_minutes = models.PositiveIntegerField(default=60)
    bandit_burn_in_hours = models.PositiveIntegerField(default=24)
    winner = models.ForeignKey("Variant", null=True, blank=True, on_delete=models.SET_NULL,
                               related_name="+", help_text="Rolled out to everyone on complete.")
    version = models.PositiveIntegerField(
        default=1, help_text="Bumped on every change: caches and ETags follow it.")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                                   on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    activated_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["account", "key"], name="experience_unique_key"),
            models.UniqueConstraint(fields=["account", "uid"], name="experience_unique_uid"),
        ]
        indexes = [models.Index(fields=["account", "status"], name="experience_status")]

    def __str__(self) -> str:
        return self.name


class ExperienceGoal(AccountScopedModel):
    experience = models.ForeignKey(Experience, on_delete=models.CASCADE,
                                   related_name="experience_goals")
    goal = models.ForeignKey(Goal, on_delete=models.PROTECT, related_name="+")
    primary = models.BooleanField(default=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["experience", "goal"], name="experience_goal_unique"),
            models.UniqueConstraint(fields=["experience"], condition=models.Q(primary=True),
                                    name="experience_one_primary_goal"),
        ]

    def __str__(self) -> str:
        return f"{self.goal.key if self.goal_id else '?'}{' (primary)' if self.primary else ''}"


class Variant(AccountScopedModel):
    """One arm. ``value`` is a JSON string for string experiences, any JSON for JSON ones;
    ``weight`` (0..1) is the custom split; ``audience``/``priority`` place it in a segmented
    experience (the first matching audience by priority wins, the base variant otherwise)."""

    experience = models.ForeignKey(Experience, on_delete=models.CASCADE,
                                   related_name="variants")
    key = models.CharField(max_length=100)
    uid = models.CharField(max_length=16, help_text="Short uid within the experience "
                                                   "(Personalize variant uid: \"0\", \"1\").")
    name = models.CharField(max_length=200, blank=True)
    value = models.JSONField(null=True, blank=True)
    content = models.JSONField(default=dict, blank=True)
    is_base = models.BooleanField(default=False)
    weight = models.FloatField(null=True, blank=True)
    audience = models.ForeignKey(Audience, null=True, blank=True, on_delete=models.PROTECT,
                                 related_name="+")
    priority = models.IntegerField(default=0)
    position = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["experience", "position", "id"]
        constraints = [
            models.UniqueConstraint(fields=["experience", "key"], name="variant_unique_key"),
            models.UniqueConstraint(fields=["experience", "uid"], name="variant_unique_uid"),
        ]

    def __str__(self) -> str:
        return self.key


class Phase(AccountScopedModel):
    """A stretch of an experience with one split: activation starts phase 1; a change of
    weights or variants while live starts the next. Results are kept per phase. ``weights``
    are by variant key; bandit reweighting stays in one phase (see ``BanditWeights``)."""

    experience = models.ForeignKey(Experience, on_delete=models.CASCADE, related_name="phases")
    number = models.PositiveIntegerField()
    started_at = models.DateTimeField(default=timezone.now)
    ended_at = models.DateTimeField(null=True, blank=True)
    weights = models.JSONField(default=dict)
    traffic_allocation = models.FloatField(default=1.0)
    variant_keys = models.JSONField(default=list)
    reason = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["experience", "number"]
        constraints = [
            models.UniqueConstraint(fields=["experience", "number"], name="phase_unique_number")
        ]

    def __str__(self) -> str:
        return f"phase {self.number}"


class Assignment(AccountScopedModel):
    """The variant a visitor got: sticky across weight changes, bandit reweighting and profile
    merges (looked up by visitor key, then by profile)."""

    # Written on every first visit by concurrent decisions: no foreign key checks in the
    # database (each took FOR KEY SHARE on the same experience and variant rows, one MultiXact
    # per concurrent request) and no index the unique constraint or the visitor index already
    # leads with. Deletes cascade through the ORM (experience, variant, account deletion).
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="+",
                                db_constraint=False, db_index=False)
    id = models.BigAutoField(primary_key=True)
    experience = models.ForeignKey(Experience, on_delete=models.CASCADE,
                                   related_name="assignments", db_constraint=False,
                                   db_index=False)
    visitor = models.CharField(max_length=300, help_text="The targeting key (uid).")
    profile_id = models.BigIntegerField(null=True, blank=True)
    variant = models.ForeignKey(Variant, on_delete=models.CASCADE, related_name="assignments",
                                db_constraint=False)
    phase = models.PositiveIntegerField()
    reason = models.CharField(max_length=32, blank=True)
    assigned_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["experience", "visitor"], name="assignment_unique")
        ]
        indexes = [
            models.Index(fields=["account", "visitor"], name="assignment_visitor"),
            models.Index(fields=["account", "profile_id"], name="assignment_profile",
                         condition=models.Q(profile_id__isnull=False)),
        ]

    def __str__(self) -> str:
        return f"{self.visitor} -> {self.variant_id}"


class Impression(AccountScopedModel):
    """A visitor saw a variant: one row per visitor and experience (``count`` counts them
    all); ``first_at`` starts the 30-day conversion window."""

    id = models.BigAutoField(primary_key=True)
    experience = models.ForeignKey(Experience, on_delete=models.CASCADE,
                                   related_name="impressions")
    variant = models.ForeignKey(Variant, on_delete=models.CASCADE, related_name="impressions")
    phase = models.PositiveIntegerField()
    visitor = models.CharField(max_length=300)
    profile_id = models.BigIntegerField(null=True, blank=True)
    first_at = models.DateTimeField(default=timezone.now)
    last_at = models.DateTimeField(default=timezone.now)
    count = models.PositiveIntegerField(default=1)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["experience", "visitor"], name="impression_unique")
        ]
        indexes = [
            models.Index(fields=["experience", "phase", "variant"], name="impression_variant"),
            models.Index(fields=["account", "visitor"], name="impression_visitor"),
            models.Index(fields=["account", "profile_id"], name="impression_profile",
                         condition=models.Q(profile_id__isnull=False)),
        ]

    def __str__(self) -> str:
        return f"{self.visitor} saw {self.variant_id}"


class Conversion(AccountScopedModel):
    """A goal reached within 30 days of the visitor's first impression, attributed to their
    variant: one row per visitor, experience and goal (``count`` counts them all)."""

    id = models.BigAutoField(primary_key=True)
    experience = models.ForeignKey(Experience, on_delete=models.CASCADE,
                                   related_name="conversions")
    goal = models.ForeignKey(Goal, on_delete=models.CASCADE, related_name="conversions")
    variant = models.ForeignKey(Variant, on_delete=models.CASCADE, related_name="conversions")
    phase = models.PositiveIntegerField()
    visitor = models.CharField(max_length=300)
    first_at = models.DateTimeField(default=timezone.now)
    last_at = models.DateTimeField(default=timezone.now)
    count = models.PositiveIntegerField(default=1)
    raw_event_id = models.BigIntegerField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["experience", "goal", "visitor"],
                                    name="conversion_unique")
        ]
        indexes = [models.Index(fields=["experience", "phase", "variant"],
                                name="conversion_variant")]

    def __str__(self) -> str:
        return f"{self.visitor} converted on {self.goal_id}"


class BanditWeights(AccountScopedModel):
    """A bandit reweighting: the weights by variant key and the arm figures they came from."""

    experience = models.ForeignKey(Experience, on_delete=models.CASCADE,
                                   related_name="bandit_weights")
    phase = models.PositiveIntegerField()
    at = models.DateTimeField(default=timezone.now)
    weights = models.JSONField()
    arms = models.JSONField(default=dict, help_text="{variant key: [visitors, conversions]}")

    class Meta:
        ordering = ["experience", "at"]
        indexes = [models.Index(fields=["experience", "at"], name="bandit_weights_at")]

    def __str__(self) -> str:
        return f"{self.experience_id}@{self.at:%Y-%m-%d %H:%M}"


class ResultSnapshot(AccountScopedModel):
    """The results of a phase at a moment (hourly): the charts over time read these."""

    experience = models.ForeignKey(Experience, on_delete=models.CASCADE,
                                   related_name="snapshots")
    phase = models.PositiveIntegerField()
    at = models.DateTimeField(default=timezone.now)
    results = models.JSONField()

    class Meta:
        ordering = ["experience", "at"]
        indexes = [models.Index(fields=["experience", "phase", "at"], name="result_snapshot_at")]

    def __str__(self) -> str:
        return f"{self.experience_id} phase {self.phase}@{self.at:%Y-%m-%d %H:%M}"


class DataQualityWarning(AccountScopedModel):
    """Something tracking ignored and counted: an impression for a variant the visitor was not
    given, a conversion with no impression, a sample ratio mismatch."""

    experience = models.ForeignKey(Experience, on_delete=models.CASCADE,
                                   related_name="warnings")
    code = models.CharField(max_length=64)
    count = models.PositiveBigIntegerField(default=0)
    first_at = models.DateTimeField(default=timezone.now)
    last_at = models.DateTimeField(default=timezone.now)
    sample = models.JSONField(default=dict, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["experience", "code"], name="dq_warning_unique")
        ]

    def __str__(self) -> str:
        return f"{self.code} x{self.count}"
