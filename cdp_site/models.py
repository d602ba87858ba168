"""Tenancy and access: accounts, roles, memberships, access tokens, write keys, the audit log."""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING, Any, Self, TypeVar

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.utils import timezone

if TYPE_CHECKING:
    from datetime import datetime


def generate_aid() -> str:
    """Account ids are short, URL-safe and never change (they appear in tag URLs)."""
    return secrets.token_hex(6)


class Account(models.Model):
    """A tenant: a brand, a country, a sandbox. Data never unifies across accounts."""

    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=100, unique=True)
    aid = models.CharField(
        "account id", max_length=32, unique=True, default=generate_aid, editable=False,
        help_text="Immutable public id used in tag and API URLs.",
    )
    enabled = models.BooleanField(default=True)
    timezone = models.CharField(max_length=64, default="UTC")
    retention_days = models.PositiveIntegerField(
        default=400, help_text="Raw events older than this are dropped by whole partitions."
    )
    monthly_event_quota = models.PositiveBigIntegerField(
        null=True, blank=True, help_text="Events accepted per calendar month; empty for no limit."
    )
    max_identifiers_per_profile = models.PositiveIntegerField(default=50)
    created_at = models.DateTimeField(auto_now_add=True)

    # Fields an Admin may change; every change is written to the audit log.
    SETTINGS_FIELDS = (
        "name", "enabled", "timezone", "retention_days", "monthly_event_quota",
        "max_identifiers_per_profile",
    )
    # Of those, the ones only the site operator may change (DESIGN.md: the operator enables,
    # disables and sets quotas; an Admin cannot lock everyone out or raise their own quota).
    OPERATOR_FIELDS = ("enabled", "monthly_event_quota")

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Permission(models.Model):
    """One action on one feature row of the role matrix (`audiences.edit`)."""

    code = models.CharField(max_length=64, unique=True)
    feature = models.CharField(max_length=64)
    action = models.CharField(max_length=32)
    description = models.CharField(max_length=200)

    class Meta:
        ordering = ["feature", "action"]

    def __str__(self) -> str:
        return self.code


class Role(models.Model):
    """One of the eleven roles; its permissions are seeded by a migration from ROLES.md."""

    code = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=100, unique=True)
    abbreviation = models.CharField(max_length=8, unique=True)
    description = models.CharField(max_length=300, blank=True)
    permissions = models.ManyToManyField(Permission, related_name="roles")

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


_M = TypeVar("_M", bound=models.Model)


class AccountScopedQuerySet(models.QuerySet[_M]):
    def for_account(self, account: Account | int) -> Self:
        return self.filter(account=account)


AccountScopedManager = models.Manager.from_queryset(AccountScopedQuerySet)


class AccountScopedModel(models.Model):
    """Base for every model that holds customer data: it belongs to exactly one account.

    The API base class (`cdp_site.api.viewsets.AccountScopedViewSet`) only ever reads through
    ``objects.for_account(request.account)``, and tests check that every model of the
    customer-data apps derives from this class.
    """

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="+")

    objects = AccountScopedManager()

    class Meta:
        abstract = True


class Membership(AccountScopedModel):
    """A user's place in an account: the roles they hold there."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    roles = models.ManyToManyField(Role, related_name="memberships", blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["user__username"]
        constraints = [
            models.UniqueConstraint(fields=["account", "user"], name="membership_unique_user")
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.account}"


class Invitation(AccountScopedModel):
    """An invitation to join an account, sent by email (issue #18 finding 6: adding a member
    never says whether the address belongs to a user). Its secret travels only in the email's
    link; the row keeps an HMAC of it, like tokens."""

    VALID_DAYS = 7

    email = models.EmailField(max_length=254)
    roles = models.ManyToManyField(Role, related_name="invitations", blank=True)
    digest = models.CharField(max_length=64, unique=True, editable=False)
    invited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
        related_name="+",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    accepted_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["account", "email"], name="invitation_account_email")]

    def __str__(self) -> str:
        return f"invitation of {self.email}"

    @property
    def status(self) -> str:
        if self.accepted_at is not None:
            return "accepted"
        if self.revoked_at is not None:
            return "revoked"
        return "expired" if self.expires_at <= timezone.now() else "pending"


class SecretKeyModel(AccountScopedModel):
    """A secret shown once, stored as HMAC-SHA256 under the server pepper."""

    prefix = models.CharField(max_length=16, help_text="The visible start of the secret.")
    digest = models.CharField(max_length=64, unique=True, editable=False)
    enabled = models.BooleanField(default=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
        related_name="+",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        abstract = True

    @property
    def masked(self) -> str:
        return f"{self.prefix}{'•' * 8}"

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None


class AccessToken(SecretKeyModel):
    """A secret for the management and profile APIs, carrying roles."""

    PREFIX = "stk_"
    EXPIRY_CHOICES = [(7, "7 days"), (30, "30 days"), (90, "90 days"), (0, "Never")]

    description = models.CharField(max_length=200)
    roles = models.ManyToManyField(Role, related_name="tokens")
    expires_at = models.DateTimeField(null=True, blank=True)
    allowed_networks = ArrayField(
        models.CharField(max_length=64), default=list, blank=True,
        help_text="CIDR networks allowed to use the token; empty for any.",
    )
    site_operator = models.BooleanField(
        default=False, help_text="Acts as the site operator (accounts, enabling, quotas) while "
        "its creator is one; only an operator may mint such a token.",
    )

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["account", "-created_at"], name="token_account_created")]

    def __str__(self) -> str:
        return f"{self.description} ({self.masked})"

    def is_expired(self, now: datetime | None = None) -> bool:
        return self.expires_at is not None and self.expires_at <= (now or timezone.now())

    @property
    def status(self) -> str:
        if self.is_revoked:
            return "revoked"
        if self.is_expired():
            return "expired"
        return "active" if self.enabled else "disabled"


class WriteKey(SecretKeyModel):
    """A public key that may only send events to, or ask decisions of, one account."""

    PREFIX = "swk_"

    name = models.CharField(max_length=200)
    stream = models.SlugField(
        max_length=100, default="default", help_text="The stream its events go to."
    )

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.masked})"


class AuditEvent(AccountScopedModel):
    """Who did what to access, settings, profiles, audiences, experiences, goals, calculated
    attributes and the schema (its draft's fields, mappings and route rules, publishing,
    reverting, rebuilding), and when. Written only by service functions; every action they
    write is a choice here (tests/audiences/test_audit.py walks them)."""

    class Action(models.TextChoices):
        TOKEN_CREATED = "token.created"
        TOKEN_UPDATED = "token.updated"
        TOKEN_REVOKED = "token.revoked"
        WRITE_KEY_CREATED = "write_key.created"
        WRITE_KEY_REVOKED = "write_key.revoked"
        USER_ADDED = "membership.added"
        USER_REMOVED = "membership.removed"
        USER_INVITED = "membership.invited"
        INVITATION_REVOKED = "membership.invitation_revoked"
        ROLES_CHANGED = "membership.roles_changed"
        ACCOUNT_SETTINGS_CHANGED = "account.settings_changed"
        ACCOUNT_CREATED = "account.created"
        PROFILE_DELETED = "profile.deleted"
        PRIVACY_REQUESTED = "privacy.requested"
        PROFILE_UPDATED = "profile.updated"
        AUDIENCE_CREATED = "audience.created"
        AUDIENCE_UPDATED = "audience.updated"
        AUDIENCE_DELETED = "audience.deleted"
        EXPERIENCE_CREATED = "experience.created"
        EXPERIENCE_UPDATED = "experience.updated"
        EXPERIENCE_ACTIVATED = "experience.activated"
        EXPERIENCE_PAUSED = "experience.paused"
        EXPERIENCE_RESUMED = "experience.resumed"
        EXPERIENCE_COMPLETED = "experience.completed"
        EXPERIENCE_DELETED = "experience.deleted"
        GOAL_CREATED = "goal.created"
        GOAL_UPDATED = "goal.updated"
        GOAL_DELETED = "goal.deleted"
        CALCULATED_ATTRIBUTE_CREATED = "calculated_attribute.created"
        CALCULATED_ATTRIBUTE_UPDATED = "calculated_attribute.updated"
        CALCULATED_ATTRIBUTE_DELETED = "calculated_attribute.deleted"
        SCHEMA_PUBLISHED = "schema.published"
        SCHEMA_REVERTED = "schema.reverted"
        SCHEMA_REBUILD_STARTED = "schema.rebuild_started"
        SCHEMA_FIELD_CREATED = "schema_field.created"
        SCHEMA_FIELD_UPDATED = "schema_field.updated"
        SCHEMA_FIELD_DELETED = "schema_field.deleted"
        MAPPING_CREATED = "mapping.created"
        MAPPING_UPDATED = "mapping.updated"
        MAPPING_DELETED = "mapping.deleted"
        ROUTE_RULE_CREATED = "route_rule.created"
        ROUTE_RULE_UPDATED = "route_rule.updated"
        ROUTE_RULE_DELETED = "route_rule.deleted"

    action = models.CharField(max_length=64, choices=Action.choices)
    actor_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
        related_name="+",
    )
    actor_token = models.ForeignKey(
        AccessToken, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_label = models.CharField(max_length=200)
    target_type = models.CharField(max_length=64)
    target_id = models.CharField(max_length=64)
    target_label = models.CharField(max_length=300)
    changes = models.JSONField(default=dict, blank=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["account", "-created_at"], name="audit_account_created")]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M} {self.actor_label} {self.action}"

    def describe(self) -> dict[str, Any]:
        return {"action": self.action, "target": self.target_label, "changes": self.changes}


class WorkerHeartbeat(models.Model):
    """Written by the django-q2 worker on a schedule; /health/ reads its age. Not customer data."""

    name = models.CharField(max_length=64, primary_key=True)
    beat_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.name} @ {self.beat_at:%H:%M:%S}"
