"""Data never crosses accounts: another account's objects are not found, and the code base
is shaped so that scoping cannot be forgotten."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from django.apps import apps
from django.db import models
from rest_framework.test import APIClient
from rest_framework.viewsets import ViewSetMixin

from cdp_site import invitations
from cdp_site.api.urls import router
from cdp_site.api.viewsets import AccountScopedViewSet, ActorMixin
from cdp_site.models import (
    AccessToken,
    Account,
    AuditEvent,
    Invitation,
    Membership,
    WriteKey,
)
from tests.conftest import (
    add_membership,
    make_account,
    make_token,
    make_user,
    make_write_key,
    session_client,
    system_actor,
)

PROJECT_APPS = ["cdp_site", "profiles", "audiences", "experiences", "connectors"]
# Models that hold no customer data, so have no account (and why).
NOT_ACCOUNT_DATA_MODELS = {
    "cdp_site.Account": "the tenant itself",
    "cdp_site.Role": "the same eleven roles in every account",
    "cdp_site.Permission": "the same matrix in every account",
    "cdp_site.WorkerHeartbeat": "the worker's liveness",
    "profiles.AggregationCursor": "how far a background aggregator has read the raw store",
}
# Models whose account may be empty (and why).
NULLABLE_ACCOUNT_MODELS = {
    "profiles.FailedEvent": "a message with a missing or unknown write key has no account",
}


@dataclass(frozen=True)
class CrossAccountCase:
    """How to make an object of an account for a router endpoint, and the detail methods the
    endpoint offers (the others answer 405 whoever owns the object)."""

    model: type[models.Model]
    make: Callable[[Account], int]
    offered: frozenset[str]
    patch_body: dict[str, Any]


def _make_token(account: Account) -> int:
    return make_token(account, ["observer"], description="theirs")[0].pk


def _make_membership(account: Account) -> int:
    user = make_user(f"member-of-{account.slug}", account, roles=["observer"])
    return Membership.objects.get(account=account, user=user).pk


def _make_write_key(account: Account) -> int:
    return make_write_key(account, name="their site")[0].pk


def _make_audit_event(account: Account) -> int:
    _make_write_key(account)  # creating a key is audited
    return AuditEvent.objects.for_account(account).latest("created_at").pk


def _make_invitation(account: Account) -> int:
    return invitations.invite(account=account, actor=system_actor(account),
                              email=f"guest@{account.slug}.example", roles=[]).pk


# Every endpoint of cdp_site/api/urls.py's router, by prefix. A new viewset must get a case here
# (test_every_router_endpoint_has_a_cross_account_case fails until it does).
CROSS_ACCOUNT_CASES: dict[str, CrossAccountCase] = {
    "tokens": CrossAccountCase(
        AccessToken, _make_token, frozenset({"get", "patch", "delete"}),
        {"description": "mine now", "enabled": False},
    ),
    "memberships": CrossAccountCase(
        Membership, _make_membership, frozenset({"get", "patch", "delete"}),
        {"roles": ["admin"]},
    ),
    "write-keys": CrossAccountCase(
        WriteKey, _make_write_key, frozenset({"get", "delete"}), {"name": "mine now"}
    ),
    "audit-log": CrossAccountCase(
        AuditEvent, _make_audit_event, frozenset({"get"}), {"action": "token.created"}
    ),
    "invitations": CrossAccountCase(
        Invitation, _make_invitation, frozenset({"get", "delete"}), {"email": "me@example.com"}
    ),
}
# Router endpoints that serve no account data (and why).
NOT_ACCOUNT_DATA_ENDPOINTS = {
    "roles": "the eleven roles and their permissions are the same in every account",
    "accounts": "accounts are the scope itself: the caller's own (tests/cdp_site/"
                "test_accounts_api.py), all of them only for the site operator",
}


def _with_roles(model: type[AccessToken] | type[Membership], account: Account) -> list[Any]:
    return [
        (row, sorted(model.objects.get(pk=row["id"]).roles.values_list("code", flat=True)))
        for row in model.objects.for_account(account).order_by("pk").values()
    ]


def _snapshot(account: Account) -> dict[str, Any]:
    """Everything of an account the API could change."""
    return {
        "account": Account.objects.filter(pk=account.pk).values().get(),
        "tokens": _with_roles(AccessToken, account),
        "memberships": _with_roles(Membership, account),
        "write_keys": list(WriteKey.objects.for_account(account).order_by("pk").values()),
        "audit": list(AuditEvent.objects.for_account(account).order_by("pk").values()),
    }


@pytest.fixture
def theirs(other_account: Account) -> dict[str, int]:
    """One object of the other account per endpoint."""
    return {prefix: case.make(other_account) for prefix, case in CROSS_ACCOUNT_CASES.items()}


# --- a token of account A and the objects of account B -----------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("method", ["get", "put", "patch", "delete"])
@pytest.mark.parametrize("prefix", sorted(CROSS_ACCOUNT_CASES))
def test_admin_of_one_account_gets_404_for_objects_of_another(
    prefix, method, admin_client, other_account, theirs
):
    case = CROSS_ACCOUNT_CASES[prefix]
    before = _snapshot(other_account)
    url = f"/api/v1/{prefix}/{theirs[prefix]}/"

    response = getattr(admin_client, method)(url, case.patch_body, format="json")

    if method in case.offered:
        assert response.status_code == 404, response.content
        assert response.json() == {"code": "not_found", "message": response.json()["message"]}
    else:
        # The endpoint offers this method for no object at all: the answer says nothing
        # about whether the object exists.
        assert response.status_code == 405, response.content
    assert str(theirs[prefix]) not in response.content.decode().replace(url, "")
    assert _snapshot(other_account) == before


@pytest.mark.django_db
@pytest.mark.parametrize("prefix", sorted(CROSS_ACCOUNT_CASES))
def test_a_missing_object_and_another_accounts_object_get_the_same_answer(
    prefix, admin_client, theirs
):
    missing = max(theirs.values()) + 10_000
    theirs_response = admin_client.get(f"/api/v1/{prefix}/{theirs[prefix]}/")
    missing_response = admin_client.get(f"/api/v1/{prefix}/{missing}/")
    assert theirs_response.status_code == missing_response.status_code == 404
    assert theirs_response.json() == missing_response.json()


@pytest.mark.django_db
@pytest.mark.parametrize("prefix", sorted(CROSS_ACCOUNT_CASES))
def test_lists_never_include_another_accounts_rows(prefix, account, admin_client, theirs):
    case = CROSS_ACCOUNT_CASES[prefix]
    mine = case.make(account)

    response = admin_client.get(f"/api/v1/{prefix}/", {"limit": 1000})

    assert response.status_code == 200
    ids = {row["id"] for row in response.json()["results"]}
    assert mine in ids
    assert theirs[prefix] not in ids
    own_ids = set(case.model.objects.filter(account=account).values_list("pk", flat=True))
    assert ids == own_ids


@pytest.mark.django_db
def test_audit_log_filters_do_not_reach_into_another_account(admin_client, theirs):
    response = admin_client.get("/api/v1/audit-log/", {"action": "write_key.created"})
    assert response.status_code == 200
    assert theirs["audit-log"] not in {row["id"] for row in response.json()["results"]}


@pytest.mark.django_db
def test_dashboard_counts_only_the_callers_account(account, other_account, admin_client, theirs):
    make_token(other_account, ["admin"])
    body = admin_client.get("/api/v1/dashboard/").json()
    assert body["account"] == account.name
    assert body["active_tokens"] == AccessToken.objects.for_account(account).count() == 1
    assert body["write_keys"] == 0
    assert body["members"] == 0


@pytest.mark.django_db
def test_a_token_acts_only_in_its_own_account(account, other_account, admin_client):
    assert admin_client.get("/api/v1/me/").json()["account"]["aid"] == account.aid
    assert admin_client.get("/api/v1/account/").json()["aid"] == account.aid


@pytest.mark.django_db
def test_member_of_two_accounts_sees_only_the_current_one_until_switching(
    account, other_account, theirs
):
    user = make_user("both", account, roles=["admin"])
    add_membership(user, other_account, ["admin"])
    client = session_client(user)
    url = f"/api/v1/tokens/{theirs['tokens']}/"

    assert client.get(url).status_code == 404  # the first account (by name) is current

    switched = client.post("/account/switch/", {"account": other_account.pk})
    assert switched.status_code == 302
    assert client.get(url).status_code == 200
    assert client.get("/api/v1/me/").json()["account"]["aid"] == other_account.aid


@pytest.mark.django_db
def test_switching_to_an_account_one_does_not_belong_to_is_refused(account, other_account, theirs):
    user = make_user("only-acme", account, roles=["admin"])
    client = session_client(user)

    response = client.post("/account/switch/", {"account": other_account.pk})

    assert response.status_code == 404
    assert client.get(f"/api/v1/tokens/{theirs['tokens']}/").status_code == 404
    assert client.get("/api/v1/me/").json()["account"]["aid"] == account.aid


@pytest.mark.django_db
def test_signed_in_user_without_any_account_is_refused(db):
    user = make_user("nobody")
    response = session_client(user).get("/api/v1/me/")
    assert response.status_code == 403
    assert response.json()["code"] == "no_account"


@pytest.mark.django_db
def test_tokens_of_a_third_account_are_not_reachable_either(admin_client):
    third = make_account("Initech")
    token, _secret = make_token(third, ["admin"])
    assert admin_client.delete(f"/api/v1/tokens/{token.pk}/").status_code == 404
    token.refresh_from_db()
    assert token.revoked_at is None


# --- the shape of the code base makes scoping impossible to forget -------------------------


def test_every_router_endpoint_has_a_cross_account_case():
    registered = {prefix: viewset for prefix, viewset, _basename in router.registry}
    covered = set(CROSS_ACCOUNT_CASES) | set(NOT_ACCOUNT_DATA_ENDPOINTS)
    assert set(registered) == covered, (
        "add a CrossAccountCase (or a reason in NOT_ACCOUNT_DATA_ENDPOINTS) for: "
        f"{sorted(set(registered) - covered)}"
    )
    for prefix, case in CROSS_ACCOUNT_CASES.items():
        assert issubclass(registered[prefix], AccountScopedViewSet), prefix
        assert registered[prefix].model is case.model, prefix
    for prefix in NOT_ACCOUNT_DATA_ENDPOINTS:
        assert not issubclass(registered[prefix], AccountScopedViewSet), prefix


def test_every_customer_data_model_has_an_account_foreign_key():
    missing = []
    for label in PROJECT_APPS:
        for model in apps.get_app_config(label).get_models():
            if model._meta.proxy or model._meta.label in NOT_ACCOUNT_DATA_MODELS:
                continue
            try:
                field = model._meta.get_field("account")
            except Exception:
                missing.append(model._meta.label)
                continue
            if not (isinstance(field, models.ForeignKey) and field.related_model is Account):
                missing.append(model._meta.label)
            elif field.null and model._meta.label not in NULLABLE_ACCOUNT_MODELS:
                missing.append(f"{model._meta.label} (nullable)")
    assert missing == []


def test_the_model_allowlists_name_only_models_that_exist():
    for label in [*NOT_ACCOUNT_DATA_MODELS, *NULLABLE_ACCOUNT_MODELS]:
        assert apps.get_model(label) is not None


def _project_modules() -> Iterator[str]:
    for package_name in PROJECT_APPS:
        package = importlib.import_module(package_name)
        yield package_name
        for info in pkgutil.walk_packages(package.__path__, prefix=f"{package_name}."):
            if ".migrations" in info.name or info.name.endswith((".settings", ".wsgi")):
                continue
            yield info.name


def _subclasses(cls: type) -> Iterator[type]:
    for subclass in cls.__subclasses__():
        yield subclass
        yield from _subclasses(subclass)


def test_every_viewset_of_the_project_goes_through_the_scoped_base_classes():
    for name in _project_modules():
        importlib.import_module(name)
    viewsets = {
        cls for cls in _subclasses(ViewSetMixin)
        if cls.__module__.split(".")[0] in PROJECT_APPS
    }
    assert viewsets, "no viewsets found: the walk is broken"
    strays = sorted(
        f"{cls.__module__}.{cls.__qualname__}" for cls in viewsets
        if not issubclass(cls, (AccountScopedViewSet, ActorMixin))
    )
    assert strays == []


def test_viewsets_of_account_data_derive_from_the_account_scoped_base():
    for name in _project_modules():
        importlib.import_module(name)
    from cdp_site.models import AccountScopedModel

    for cls in _subclasses(ViewSetMixin):
        if cls.__module__.split(".")[0] not in PROJECT_APPS:
            continue
        queryset = getattr(cls, "queryset", None)
        model = getattr(cls, "model", None) or getattr(queryset, "model", None)
        if isinstance(model, type) and issubclass(model, AccountScopedModel):
            assert issubclass(cls, AccountScopedViewSet), cls


def test_overriding_get_queryset_on_a_scoped_viewset_is_a_type_error():
    with pytest.raises(TypeError, match="get_queryset"):

        class Sneaky(AccountScopedViewSet):
            model = AccessToken

            def get_queryset(self) -> Any:
                return AccessToken.objects.all()


def test_overriding_get_queryset_further_down_the_hierarchy_is_a_type_error_too():
    class Narrowed(AccountScopedViewSet):
        model = AccessToken

    with pytest.raises(TypeError, match="get_queryset"):

        class Sneakier(Narrowed):
            def get_queryset(self) -> Any:
                return AccessToken.objects.all()


def test_narrowing_through_scope_queryset_is_allowed():
    class Narrowed(AccountScopedViewSet):
        model = AccessToken

        def scope_queryset(self, queryset: Any) -> Any:
            return queryset.filter(enabled=True)

    assert "get_queryset" not in Narrowed.__dict__


def test_members_of_a_disabled_account_lose_session_access(db):
    from tests.conftest import PASSWORD, make_account, make_user

    account = make_account("Dormant")
    user = make_user("dormant-admin", account, ["admin"])
    account.enabled = False
    account.save(update_fields=["enabled"])
    client = APIClient()
    assert client.login(username=user.username, password=PASSWORD)
    response = client.get("/api/v1/me/")
    assert response.status_code == 403
    assert response.json()["code"] == "no_account"
