"""The audit log: written by the services that change access and settings, never by signals."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.db import models

from cdp_site.models import AccessToken, Account, AccountScopedModel, AuditEvent

if TYPE_CHECKING:
    from cdp_site.tenancy import Actor


def record(
    account: Account,
    actor: Actor,
    action: str,
    target: models.Model,
    *,
    changes: dict[str, Any] | None = None,
) -> AuditEvent:
    token = actor.token if isinstance(actor.token, AccessToken) else None
    return AuditEvent.objects.create(
        account=account,
        action=action,
        actor_user=actor.user if actor.user is not None and actor.user.pk else None,
        actor_token=token,
        actor_label=actor.label[:200],
        target_type=target._meta.model_name or "",
        target_id=str(target.pk),
        target_label=str(target)[:300],
        changes=changes or {},
        ip_address=actor.ip_address,
    )


def record_change(actor: Actor | None, action: str, target: AccountScopedModel,
                  changes: dict[str, Any] | None = None) -> AuditEvent | None:
    """An entry, in the target's account, for a change someone made; none without an actor
    (a seed, a command, a scheduled task). The services call it inside the change's
    transaction, so a refused change leaves no entry."""
    if actor is None:
        return None
    return record(target.account, actor, action, target, changes=changes)
