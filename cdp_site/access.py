"""Access tokens and write keys: minting, hashing, verifying, revoking.

Secrets are ``stk_``/``swk_`` plus 32 random URL-safe bytes. Only an HMAC-SHA256 of the whole
secret under the server pepper is stored, so a leaked database yields no usable secret, and
lookup is one indexed equality on the digest (argon2 would make every API call slow).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Generic, TypeVar

from django.conf import settings
from django.db import transaction
from django.db.models import BooleanField, Exists, ExpressionWrapper, OuterRef, Q
from django.utils import timezone

from cdp_site import audit
from cdp_site.models import AccessToken, Account, AuditEvent, Membership, Role, WriteKey
from cdp_site.write_keys import VISIBLE_PREFIX_LENGTH

if TYPE_CHECKING:
    from collections.abc import Iterable
    from datetime import datetime

    from cdp_site.tenancy import Actor



class AccessError(Exception):
    """A request for a token that the rules refuse (status and code for the API)."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


def digest_secret(secret: str) -> str:
    return hmac.new(
        settings.TOKEN_PEPPER.encode(), secret.encode(), hashlib.sha256
    ).hexdigest()


def _mint(prefix: str) -> tuple[str, str, str]:
    secret = prefix + secrets.token_urlsafe(32)
    return secret, secret[:VISIBLE_PREFIX_LENGTH], digest_secret(secret)


def validate_networks(networks: Iterable[str]) -> list[str]:
    """Normalise CIDR networks; raise AccessError naming the first bad one."""
    normalised = []
    for network in networks:
        try:
            normalised.append(str(ipaddress.ip_network(str(network).strip(), strict=False)))
        except ValueError:
            raise AccessError(
                "invalid_network", f"{network!r} is not an IP network (use CIDR, e.g. 10.0.0.0/8)."
            ) from None
    return normalised


_Key = TypeVar("_Key", AccessToken, WriteKey)


@dataclass(frozen=True)
class NewSecret(Generic[_Key]):
    """A freshly minted key and its secret: the only time the secret exists in clear."""

    obj: _Key
    secret: str


@transaction.atomic
def create_access_token(
    *,
    account: Account,
    actor: Actor,
    description: str,
    roles: Iterable[Role],
    expires_in_days: int | None,
    allowed_networks: Iterable[str] = (),
    enabled: bool = True,
    site_operator: bool = False,
) -> NewSecret[AccessToken]:
    """Mint a token whose roles never exceed the creator's."""
    roles = list(roles)
    if not roles:
        raise AccessError("invalid", "A token needs at least one role.")
    if actor.account.pk != account.pk:
        raise AccessError("account_not_allowed", "A token is minted by an actor of its account.",
                          403)
    if site_operator and not actor.is_site_operator:
        raise AccessError("operator_only", "Only the site operator may mint an operator token.",
                          403)
    granted = actor.role_codes
    wider = sorted(role.name for role in roles if role.code not in granted)
    if wider and not actor.is_superuser:
        raise AccessError(
            "permission_denied",
            "A token cannot carry roles its creator lacks: " + ", ".join(wider) + ".",
            status=403,
        )
    if expires_in_days not in (None, 0, 7, 30, 90):
        raise AccessError("invalid", "Expiry must be 7, 30 or 90 days, or never.")
    creator = actor.user
    if creator is None and actor.token is not None:
        # A token minted with a token answers to the person behind it, so it loses roles
        # with them (accounts._trim_token_roles) instead of keeping them for ever.
        creator = actor.token.created_by
    secret, prefix, digest = _mint(AccessToken.PREFIX)
    token = AccessToken.objects.create(
        account=account,
        prefix=prefix,
        digest=digest,
        description=description.strip() or "API token",
        expires_at=timezone.now() + timedelta(days=expires_in_days) if expires_in_days else None,
        allowed_networks=validate_networks(allowed_networks),
        enabled=enabled,
        created_by=creator,
        site_operator=site_operator,
    )
    token.roles.set(roles)
    audit.record(
        account, actor, AuditEvent.Action.TOKEN_CREATED, token,
        changes={
            "roles": sorted(role.code for role in roles),
            "expires_at": token.expires_at.isoformat() if token.expires_at else None,
            "allowed_networks": token.allowed_networks,
            **({"site_operator": True} if site_operator else {}),
        },
    )
    return NewSecret(token, secret)


@transaction.atomic
def update_access_token(
    token: AccessToken, *, actor: Actor, description: str | None = None,
    enabled: bool | None = None, allowed_networks: Iterable[str] | None = None,
) -> AccessToken:
    changes: dict[str, list[object]] = {}
    if description is not None and description != token.description:
        changes["description"] = [token.description, description]
        token.description = description
    if enabled is not None and enabled != token.enabled:
        if enabled and token.is_revoked:
            raise AccessError("invalid", "A revoked token cannot be enabled again.")
        changes["enabled"] = [token.enabled, enabled]
        token.enabled = enabled
    if allowed_networks is not None:
        networks = validate_networks(allowed_networks)
        if networks != token.allowed_networks:
            changes["allowed_networks"] = [token.allowed_networks, networks]
            token.allowed_networks = networks
    if changes:
        token.save(update_fields=[*changes])
        audit.record(token.account, actor, AuditEvent.Action.TOKEN_UPDATED, token, changes=changes)
    return token


@transaction.atomic
def revoke_access_token(token: AccessToken, *, actor: Actor) -> AccessToken:
    """Revocation is final and takes effect on the next request (no cache holds tokens)."""
    if not token.is_revoked:
        token.revoked_at = timezone.now()
        token.enabled = False
        token.save(update_fields=["revoked_at", "enabled"])
        audit.record(token.account, actor, AuditEvent.Action.TOKEN_REVOKED, token)
    return token


def authenticate_access_token(secret: str, client_ip: str | None) -> AccessToken | None:
    """The token for a presented secret, or None: unknown, malformed, expired, disabled,
    revoked, of a disabled account, used from outside its networks, or minted by someone who
    is no longer a member of its account (nor the operator) all look the same."""
    if not secret.startswith(AccessToken.PREFIX) or len(secret) > 100:
        return None
    token = (
        AccessToken.objects.select_related("account", "created_by")
        .filter(digest=digest_secret(secret))
        .annotate(creator_present=ExpressionWrapper(
            Q(created_by__isnull=True) | Q(created_by__is_superuser=True)
            | Exists(Membership.objects.filter(account=OuterRef("account"),
                                               user=OuterRef("created_by"))),
            output_field=BooleanField(),
        ))
        .first()
    )
    now = timezone.now()
    if (
        token is None
        or not getattr(token, "creator_present", False)
        or not token.enabled
        or token.is_revoked
        or token.is_expired(now)
        or not token.account.enabled
        or not ip_allowed(client_ip, token.allowed_networks)
    ):
        return None
    mark_used(token, now)
    return token


def mark_used(secret_key: AccessToken | WriteKey, now: datetime) -> None:
    """Record that a token or write key was used: at most one write per key every
    STRATA_TOKEN_LAST_USED_INTERVAL seconds (a conditional update, so concurrent requests do
    not all write)."""
    interval = timedelta(seconds=settings.STRATA_TOKEN_LAST_USED_INTERVAL)
    last = secret_key.last_used_at
    if last is not None and last >= now - interval:
        return
    rows = type(secret_key).objects.filter(pk=secret_key.pk)
    rows.filter(last_used_at__isnull=True).update(last_used_at=now) or rows.filter(
        last_used_at__lt=now - interval).update(last_used_at=now)
    secret_key.last_used_at = now


def ip_allowed(client_ip: str | None, networks: list[str]) -> bool:
    if not networks:
        return True
    if not client_ip:
        return False
    try:
        address = ipaddress.ip_address(client_ip)
    except ValueError:
        return False
    return any(address in ipaddress.ip_network(network) for network in networks)


@transaction.atomic
def create_write_key(
    *, account: Account, actor: Actor, name: str, stream: str = "default"
) -> NewSecret[WriteKey]:
    secret, prefix, digest = _mint(WriteKey.PREFIX)
    key = WriteKey.objects.create(
        account=account, prefix=prefix, digest=digest, name=name.strip() or "Write key",
        stream=stream or "default", created_by=actor.user,
    )
    audit.record(
        account, actor, AuditEvent.Action.WRITE_KEY_CREATED, key, changes={"stream": key.stream}
    )
    return NewSecret(key, secret)


@transaction.atomic
def revoke_write_key(key: WriteKey, *, actor: Actor) -> WriteKey:
    if not key.is_revoked:
        key.revoked_at = timezone.now()
        key.enabled = False
        key.save(update_fields=["revoked_at", "enabled"])
        audit.record(key.account, actor, AuditEvent.Action.WRITE_KEY_REVOKED, key)
    return key


def check_write_key(secret: str) -> tuple[WriteKey | None, str]:
    """The write key for a secret (with its account) and why it may not be used: ``""`` when
    it is live, else ``unknown``, ``revoked``, ``disabled`` or ``account_disabled``. The key is
    None only when unknown; collection uses the reason to answer 401 or 403 and to file the
    refused request under the right account."""
    if not secret or not secret.startswith(WriteKey.PREFIX) or len(secret) > 100:
        return None, "unknown"
    key = WriteKey.objects.select_related("account").filter(digest=digest_secret(secret)).first()
    if key is None:
        return None, "unknown"
    if key.is_revoked:
        return key, "revoked"
    if not key.enabled:
        return key, "disabled"
    if not key.account.enabled:
        return key, "account_disabled"
    return key, ""


WRITE_KEY_CACHE_SECONDS = 5.0
_WRITE_KEY_CACHE_SIZE = 10_000
_live_write_keys: dict[str, tuple[float, WriteKey]] = {}


def check_write_key_cached(secret: str) -> tuple[WriteKey | None, str]:
    """check_write_key for the collection hot path: a live key is remembered in this process
    for a few seconds (a revoked or disabled key, or a disabled account, stops being accepted
    within WRITE_KEY_CACHE_SECONDS). Refused keys are never cached."""
    now = time.monotonic()
    cached = _live_write_keys.get(secret)
    if cached is not None and now - cached[0] < WRITE_KEY_CACHE_SECONDS:
        return cached[1], ""
    key, problem = check_write_key(secret)
    if problem:
        _live_write_keys.pop(secret, None)
        return key, problem
    assert key is not None
    # A live key is looked up again every few seconds while in use: "last used" stays true
    # to within a minute (the admin and the API showed "never" after heavy use).
    mark_used(key, timezone.now())
    if len(_live_write_keys) >= _WRITE_KEY_CACHE_SIZE:
        _live_write_keys.clear()
    _live_write_keys[secret] = (now, key)
    return key, ""


def authenticate_write_key(secret: str) -> WriteKey | None:
    """The live write key for a secret, with its account, or None."""
    key, problem = check_write_key(secret)
    return None if problem else key
