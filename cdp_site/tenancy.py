"""Who is asking, in which account, with which permissions.

Every request that reaches account data carries an ``Actor``: a signed-in user acting in their
current account (chosen with the account switcher, kept in the session), or an access token
acting in its own account. Permissions come from roles, and roles from the seeded matrix.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from django.utils.functional import SimpleLazyObject

from cdp_site.client import client_ip
from cdp_site.models import AccessToken, Account, Membership, Permission

if TYPE_CHECKING:
    from django.contrib.auth.models import User
    from django.http import HttpRequest, HttpResponse

SESSION_ACCOUNT_KEY = "strata_account_id"

# What this module works out for a request, kept on the request so that each is resolved
# once. HttpRequest declares no such attributes: they are set and read by these names only.
_ACCOUNT_ATTR = "_strata_account"
_ACTOR_ATTR = "_strata_actor"
_LAZY_ACCOUNT_ATTR = "account"


@dataclass
class Actor:
    account: Account
    user: User | None = None
    token: AccessToken | None = None
    role_codes: frozenset[str] = frozenset()
    permissions: frozenset[str] = frozenset()
    is_superuser: bool = False
    ip_address: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        if self.token is not None:
            return f"token {self.token.prefix}… ({self.token.description})"
        if self.user is not None:
            return self.user.get_username()
        return "system"

    def has(self, permission: str) -> bool:
        return permission in self.permissions

    @property
    def is_site_operator(self) -> bool:
        """The installation's operator (DESIGN.md): a superuser, or a token one of them minted
        as an operator token. Creates, enables and disables accounts and sets their quotas."""
        return self.is_superuser


def permissions_for_roles(role_codes: frozenset[str]) -> frozenset[str]:
    if not role_codes:
        return frozenset()
    return frozenset(
        Permission.objects.filter(roles__code__in=role_codes).values_list("code", flat=True)
    )


def actor_for_token(token: AccessToken, ip_address: str | None) -> Actor:
    role_codes = frozenset(token.roles.values_list("code", flat=True))
    creator = token.created_by
    return Actor(
        account=token.account, token=token, role_codes=role_codes,
        permissions=permissions_for_roles(role_codes), ip_address=ip_address,
        is_superuser=token.site_operator and creator is not None and creator.is_superuser,
    )


def actor_for_user(
    user: User, account: Account, ip_address: str | None
) -> Actor | None:
    """The user acting in an account, or None if they have no place there."""
    if user.is_superuser:
        # The installation's operator acts as an Admin in any account.
        return Actor(
            account=account, user=user, role_codes=frozenset({"admin"}),
            permissions=frozenset(Permission.objects.values_list("code", flat=True)),
            is_superuser=True, ip_address=ip_address,
        )
    membership = Membership.objects.filter(account=account, user=user).first()
    if membership is None:
        return None
    role_codes = frozenset(membership.roles.values_list("code", flat=True))
    return Actor(
        account=account, user=user, role_codes=role_codes,
        permissions=permissions_for_roles(role_codes), ip_address=ip_address,
    )


def accounts_for_user(user: User) -> list[Account]:
    accounts = Account.objects.all()
    if not user.is_superuser:
        # Members of a disabled account lose access to it (operators keep it, to re-enable).
        accounts = accounts.filter(
            enabled=True, pk__in=Membership.objects.filter(user=user).values("account_id")
        )
    return list(accounts.order_by("name"))


def current_account(request: HttpRequest) -> Account | None:
    """The signed-in user's current account: the one chosen in the session if they still
    belong to it, else their first account."""
    if hasattr(request, _ACCOUNT_ATTR):
        cached: Account | None = getattr(request, _ACCOUNT_ATTR)
        return cached
    account = None
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        accounts = accounts_for_user(user)
        chosen = request.session.get(SESSION_ACCOUNT_KEY)
        account = next((a for a in accounts if a.pk == chosen), accounts[0] if accounts else None)
    setattr(request, _ACCOUNT_ATTR, account)
    return account


def session_actor(request: HttpRequest) -> Actor | None:
    if hasattr(request, _ACTOR_ATTR):
        cached: Actor | None = getattr(request, _ACTOR_ATTR)
        return cached
    account = current_account(request)
    user = request.user
    actor = (
        actor_for_user(user, account, client_ip(request))
        if account is not None and user.is_authenticated
        else None
    )
    setattr(request, _ACTOR_ATTR, actor)
    return actor


def switch_account(request: HttpRequest, account_id: int) -> Account | None:
    """Make an account current for this session, if the user belongs to it."""
    user = request.user
    if not user.is_authenticated:
        return None
    account = next((a for a in accounts_for_user(user) if a.pk == account_id), None)
    if account is not None:
        request.session[SESSION_ACCOUNT_KEY] = account.pk
        for attr in (_ACCOUNT_ATTR, _ACTOR_ATTR):
            if hasattr(request, attr):
                delattr(request, attr)
    return account


class CurrentAccountMiddleware:
    """Exposes ``request.account`` lazily for pages (the API sets it on authentication)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        setattr(request, _LAZY_ACCOUNT_ATTR, SimpleLazyObject(lambda: current_account(request)))
        return self.get_response(request)


def account_context(request: HttpRequest) -> dict[str, Any]:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    return {
        "strata_account": current_account(request),
        "strata_accounts": accounts_for_user(user),
    }
