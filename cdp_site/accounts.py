"""Services for accounts and memberships: who belongs where, with which roles.

Each change is audited. When a member loses roles (or their membership), the tokens they
created lose the same roles, so a token is never wider than its creator.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from django.db import transaction

from cdp_site import access, audit
from cdp_site.access import AccessError
from cdp_site.hooks import hooks
from cdp_site.models import AccessToken, Account, AuditEvent, Membership, Role

if TYPE_CHECKING:
    from collections.abc import Iterable

    from django.contrib.auth.models import User

    from cdp_site.tenancy import Actor

log = logging.getLogger(__name__)


def create_account(*, name: str, slug: str, actor: Actor | None = None, **values: Any) -> Account:
    """Create an account and let the apps prepare for it (``account_created``). With an actor
    (the API, the admin), only the site operator may, and the new account's log says who."""
    if actor is not None and not actor.is_site_operator:
        raise AccessError("operator_only", "Only the site operator creates accounts.", 403)
    if Account.objects.filter(slug=slug).exists():
        raise AccessError("slug_taken", f"An account with the slug {slug!r} exists.", 409)
    with transaction.atomic():
        account = Account.objects.create(name=name, slug=slug, **values)
        if actor is not None:
            audit.record(account, actor, AuditEvent.Action.ACCOUNT_CREATED, account,
                         changes={"name": name, "slug": slug, **values})
    account_created(account)
    return account


def account_created(account: Account) -> None:
    """Once the new account is committed, run ``STRATA_ACCOUNT_CREATED_HOOKS``: dotted paths of
    functions taking the account, so cdp_site names no app (profiles gives the account its own
    raw-store partitions). A failing hook is logged, not raised: the account exists, and the
    apps' daily jobs repair what a hook would have prepared."""

    def run_hooks() -> None:
        for hook in hooks("STRATA_ACCOUNT_CREATED_HOOKS"):
            try:
                hook(account)
            except Exception:
                log.exception("account-created hook %s failed for account %s",
                              getattr(hook, "__qualname__", hook), account.pk)

    transaction.on_commit(run_hooks)


def _role_codes(roles: Iterable[Role]) -> list[str]:
    return sorted(role.code for role in roles)


@transaction.atomic
def add_member(
    *, account: Account, actor: Actor, user: User, roles: Iterable[Role]
) -> Membership:
    if Membership.objects.filter(account=account, user=user).exists():
        raise AccessError("already_member", f"{user.get_username()} is already a member.", 409)
    roles = list(roles)
    membership = Membership.objects.create(account=account, user=user)
    membership.roles.set(roles)
    audit.record(
        account, actor, AuditEvent.Action.USER_ADDED, membership,
        changes={"user": user.get_username(), "roles": _role_codes(roles)},
    )
    return membership


@transaction.atomic
def set_member_roles(membership: Membership, *, actor: Actor, roles: Iterable[Role]) -> Membership:
    roles = list(roles)
    before = _role_codes(membership.roles.all())
    after = _role_codes(roles)
    if before == after:
        return membership
    membership.roles.set(roles)
    removed = set(before) - set(after)
    if removed:
        _trim_token_roles(membership.account, membership.user, removed)
    audit.record(
        membership.account, actor, AuditEvent.Action.ROLES_CHANGED, membership,
        changes={"roles": [before, after]},
    )
    return membership


@transaction.atomic
def remove_member(membership: Membership, *, actor: Actor) -> None:
    """The member goes, and so do the tokens they made in this account: revoked (and, were one
    missed, refused at authentication: access.authenticate_access_token)."""
    roles = _role_codes(membership.roles.all())
    _trim_token_roles(membership.account, membership.user, set(roles))
    if not membership.user.is_superuser:
        for token in AccessToken.objects.for_account(membership.account).filter(
            created_by=membership.user, revoked_at__isnull=True
        ):
            access.revoke_access_token(token, actor=actor)
    audit.record(
        membership.account, actor, AuditEvent.Action.USER_REMOVED, membership,
        changes={"user": membership.user.get_username(), "roles": roles},
    )
    membership.delete()


def _trim_token_roles(account: Account, user: User, role_codes: set[str]) -> None:
    through = AccessToken.roles.through
    through.objects.filter(
        accesstoken__account=account,
        accesstoken__created_by=user,
        role__code__in=role_codes,
    ).delete()


@transaction.atomic
def update_account_settings(account: Account, *, actor: Actor, **values: Any) -> Account:
    changes = {}
    for name, value in values.items():
        if name not in Account.SETTINGS_FIELDS:
            raise AccessError("invalid", f"{name} is not an account setting.")
        if getattr(account, name) != value:
            changes[name] = [getattr(account, name), value]
    refused = sorted(set(changes) & set(Account.OPERATOR_FIELDS))
    if refused and not actor.is_site_operator:
        raise AccessError(
            "operator_only", f"Only the site operator may change {', '.join(refused)}.", 403
        )
    for name, (_before, value) in changes.items():
        setattr(account, name, value)
    if changes:
        account.save(update_fields=list(changes))
        audit.record(account, actor, AuditEvent.Action.ACCOUNT_SETTINGS_CHANGED, account,
                     changes=changes)
    return account
