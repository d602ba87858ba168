"""Shared builders for the suite: accounts, users with roles, tokens, API clients."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

from cdp_site import access
from cdp_site.models import AccessToken, Account, AuditEvent, Membership, Role, WriteKey
from cdp_site.tenancy import Actor

PASSWORD = "correct-horse-battery-staple"


def make_account(name: str = "Acme", slug: str | None = None) -> Account:
    return Account.objects.create(name=name, slug=slug or name.lower().replace(" ", "-"))


def make_user(username: str, account: Account | None = None, roles: Iterable[str] = ("admin",),
              **extra: Any) -> Any:
    user = get_user_model().objects.create_user(
        username, email=f"{username}@example.com", password=PASSWORD, **extra
    )
    if account is not None:
        add_membership(user, account, roles)
    return user


def add_membership(user: Any, account: Account, roles: Iterable[str]) -> Membership:
    membership = Membership.objects.create(account=account, user=user)
    membership.roles.set(Role.objects.filter(code__in=list(roles)))
    return membership


def system_actor(account: Account, roles: Iterable[str] = ("admin",), user: Any = None) -> Actor:
    return Actor(account=account, user=user, role_codes=frozenset(roles), is_superuser=user is None)


def make_token(account: Account, roles: Iterable[str] = ("admin",), *, user: Any = None,
               **kwargs: Any) -> tuple[Any, str]:
    """A token with these roles (minted by a system actor unless a user is given)."""
    kwargs.setdefault("description", "test token")
    kwargs.setdefault("expires_in_days", None)
    new = access.create_access_token(
        account=account, actor=system_actor(account, roles, user),
        roles=Role.objects.filter(code__in=list(roles)), **kwargs,
    )
    return new.obj, new.secret


def token_client(secret: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


def session_client(user: Any) -> APIClient:
    """An API client signed in with a session, as the admin UI is (CSRF is not enforced)."""
    client = APIClient()
    assert client.login(username=user.get_username(), password=PASSWORD)
    return client


def make_write_key(account: Account, name: str = "Website", **kwargs: Any) -> tuple[WriteKey, str]:
    new = access.create_write_key(
        account=account, actor=system_actor(account), name=name, **kwargs
    )
    return new.obj, new.secret


def audit_events(account: Account, action: str | None = None) -> list[AuditEvent]:
    events = AuditEvent.objects.for_account(account)
    if action is not None:
        events = events.filter(action=action)
    return list(events.order_by("created_at", "id"))


def token_roles(token: AccessToken) -> set[str]:
    return set(token.roles.values_list("code", flat=True))


@pytest.fixture
def account(db: Any) -> Account:
    return make_account("Acme")


@pytest.fixture
def other_account(db: Any) -> Account:
    return make_account("Globex")


@pytest.fixture
def admin_client(account: Account) -> APIClient:
    _token, secret = make_token(account, ["admin"])
    return token_client(secret)


@pytest.fixture
def client_for_roles(account: Account) -> Callable[..., APIClient]:
    def build(*roles: str, target: Account | None = None) -> APIClient:
        _token, secret = make_token(target or account, roles)
        return token_client(secret)

    return build


UNMANAGED_TABLES = ("profiles_rawevent",)


@pytest.fixture(autouse=True)
def _empty_unmanaged_tables_after_transactional_tests(
    request: pytest.FixtureRequest, django_db_blocker: Any
) -> Any:
    """Django's flush after a transactional test skips unmanaged tables (the partitioned raw
    store), so rows a live-server test stored would leak into later tests: empty them."""
    yield
    if not {"transactional_db", "live_server"} & set(request.fixturenames):
        marker = request.node.get_closest_marker("django_db")
        if marker is None or not marker.kwargs.get("transaction"):
            return
    from django.db import connection

    with django_db_blocker.unblock(), connection.cursor() as cursor:
        cursor.execute("TRUNCATE " + ", ".join(UNMANAGED_TABLES))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every transactional test restores the migrated data (the seeded roles) after Django's
    flush. Without this, one transactional test that skips it flushes the roles away and lets
    post_migrate recreate content types under new ids, which then collide with the next
    serialized-rollback test on the same worker."""
    for item in items:
        marker = item.get_closest_marker("django_db")
        kwargs = dict(marker.kwargs) if marker is not None else {}
        args = marker.args if marker is not None else ()
        transactional = kwargs.get("transaction") or {"transactional_db", "live_server"} & set(
            getattr(item, "fixturenames", ())
        )
        if not transactional or kwargs.get("serialized_rollback"):
            continue
        kwargs.update(transaction=True, serialized_rollback=True)
        # Prepended, so it is the closest marker whatever level the original was set at.
        item.add_marker(pytest.mark.django_db(*args, **kwargs), append=False)
