"""Adding a member is inviting an email address (issue #18 finding 6).

The Admin's answer is the same whether or not the address belongs to a user anywhere, so the
members endpoint is no oracle of who uses Strata in other accounts. The person gets an email
with a link; whoever already has a user with that address signs in and accepts, anyone else
chooses a password (``validate_password``) and gets a user whose username is the address.
"""

from __future__ import annotations

import logging
import secrets
from datetime import timedelta
from typing import TYPE_CHECKING

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.mail import send_mail
from django.db import transaction
from django.utils import timezone

from cdp_site import audit
from cdp_site.access import AccessError, digest_secret
from cdp_site.models import AuditEvent, Invitation, Membership
from cdp_site.tenancy import Actor

if TYPE_CHECKING:
    from collections.abc import Iterable

    from django.contrib.auth.models import User

    from cdp_site.models import Account, Role

log = logging.getLogger(__name__)

SECRET_PREFIX = "inv_"


def accept_url(secret: str) -> str:
    return f"{settings.STRATA_PUBLIC_URL.rstrip('/')}/invitations/{secret}/"


@transaction.atomic
def invite(*, account: Account, actor: Actor, email: str, roles: Iterable[Role]) -> Invitation:
    """Store an invitation (a pending one to the same address is replaced) and email its link
    once the transaction commits. Nothing here looks at users."""
    email = email.strip().lower()
    roles = list(roles)
    now = timezone.now()
    Invitation.objects.for_account(account).filter(
        email=email, accepted_at__isnull=True, revoked_at__isnull=True
    ).update(revoked_at=now)
    secret = SECRET_PREFIX + secrets.token_urlsafe(32)
    invitation = Invitation.objects.create(
        account=account, email=email, digest=digest_secret(secret),
        invited_by=actor.user if actor.user is not None and actor.user.pk else None,
        expires_at=now + timedelta(days=Invitation.VALID_DAYS),
    )
    invitation.roles.set(roles)
    audit.record(account, actor, AuditEvent.Action.USER_INVITED, invitation,
                 changes={"email": email, "roles": sorted(role.code for role in roles)})
    transaction.on_commit(lambda: _send(invitation, secret, inviter=actor.label))
    return invitation


def _send(invitation: Invitation, secret: str, *, inviter: str) -> None:
    account = invitation.account.name
    try:
        send_mail(
            subject=f"You are invited to {account} on Strata",
            message=(
                f"{inviter} invited you to the account {account} on Strata.\n\n"
                f"Accept within {Invitation.VALID_DAYS} days: {accept_url(secret)}\n\n"
                "If you already use Strata with this address, sign in to accept; otherwise "
                "you will choose a password. If you did not expect this, ignore this email."
            ),
            from_email=None, recipient_list=[invitation.email],
        )
    except Exception:  # the invitation stays; the Admin may invite again
        log.exception("could not send invitation %s", invitation.pk)


@transaction.atomic
def revoke(invitation: Invitation, *, actor: Actor) -> None:
    if invitation.status == "pending":
        invitation.revoked_at = timezone.now()
        invitation.save(update_fields=["revoked_at"])
        audit.record(invitation.account, actor, AuditEvent.Action.INVITATION_REVOKED, invitation,
                     changes={"email": invitation.email})


def pending(secret: str) -> Invitation | None:
    """The invitation a link's secret names, if it may still be accepted."""
    if not secret.startswith(SECRET_PREFIX) or len(secret) > 100:
        return None
    invitation = (
        Invitation.objects.select_related("account").filter(digest=digest_secret(secret)).first()
    )
    if invitation is None or invitation.status != "pending" or not invitation.account.enabled:
        return None
    return invitation


def invited_user(invitation: Invitation) -> User | None:
    """The existing user with the invited address (who must sign in to accept), if any."""
    users = get_user_model().objects.filter(email__iexact=invitation.email).order_by("pk")
    return users.first()


@transaction.atomic
def accept(invitation: Invitation, user: User) -> Membership:
    """``user`` joins with the invitation's roles (added to any they already hold there)."""
    if invited_user(invitation) != user:
        raise AccessError("wrong_user", "Sign in with the invited address to accept.", 403)
    locked = Invitation.objects.select_for_update().get(pk=invitation.pk)
    if locked.status != "pending":
        raise AccessError("invitation_used", "This invitation is no longer valid.", 410)
    membership, _created = Membership.objects.get_or_create(account=locked.account, user=user)
    roles = list(locked.roles.all())
    membership.roles.add(*roles)
    locked.accepted_at = timezone.now()
    locked.save(update_fields=["accepted_at"])
    joiner = Actor(account=locked.account, user=user)
    audit.record(locked.account, joiner, AuditEvent.Action.USER_ADDED, membership,
                 changes={"user": user.get_username(), "roles": sorted(r.code for r in roles),
                          "invitation": locked.pk})
    return membership


@transaction.atomic
def accept_as_new_user(invitation: Invitation, password: str) -> tuple[User, Membership]:
    """Create the invited person's user (username = the address) with a password that passes
    the site's validators, then accept. Refused when the address already has a user."""
    if invited_user(invitation) is not None:
        raise AccessError("sign_in_to_accept", "Sign in with the invited address to accept.", 403)
    model = get_user_model()
    candidate = model(username=invitation.email, email=invitation.email)
    validate_password(password, user=candidate)
    user = model.objects.create_user(username=invitation.email, email=invitation.email,
                                     password=password)
    return user, accept(invitation, user)
