"""The site operator and /api/v1/accounts/ (issue #12 item 2), enabling, disabling and quotas
as the operator's only (issue #18 finding 8), a token for an explicitly named account, and a
removed member's tokens refused (issue #18 finding 7)."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

from cdp_site.models import AccessToken, Account, AuditEvent, Membership
from tests.conftest import (
    add_membership,
    make_account,
    make_token,
    make_user,
    session_client,
    token_client,
)

INVALID_TOKEN = {"code": "invalid_token", "message": "The access token is not valid."}


def _operator() -> Any:
    return make_user("root", is_superuser=True, is_staff=True)


def _operator_token(account: Account) -> str:
    """An operator token, minted through the API by the signed-in operator."""
    response = session_client(_operator()).post("/api/v1/tokens/", {
        "account": account.aid, "description": "ops", "roles": ["admin"], "site_operator": True,
    }, format="json")
    assert response.status_code == 201, response.content
    return str(response.json()["token"])


def _error(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.content
    body = response.json()
    assert body["code"] == code and body["message"]
    return body


# --- listing: anyone, their own -------------------------------------------------------------


@pytest.mark.django_db
def test_a_member_lists_only_their_own_accounts(account, other_account):
    third = make_account("Initech")
    ada = make_user("ada", account, roles=["observer"])
    add_membership(ada, third, ["marketer"])
    listing = session_client(ada).get("/api/v1/accounts/")
    assert listing.status_code == 200
    assert [row["aid"] for row in listing.json()["results"]] == [account.aid, third.aid]
    assert session_client(ada).get(f"/api/v1/accounts/{other_account.aid}/").status_code == 404


@pytest.mark.django_db
def test_a_token_lists_its_own_account_only(account, other_account):
    _token, secret = make_token(account, ["observer"])
    rows = token_client(secret).get("/api/v1/accounts").json()["results"]
    assert [row["aid"] for row in rows] == [account.aid]
    assert rows[0]["name"] == "Acme" and "monthly_event_quota" in rows[0]


@pytest.mark.django_db
def test_the_operator_lists_every_account(account, other_account):
    rows = session_client(_operator()).get("/api/v1/accounts/").json()["results"]
    assert {row["aid"] for row in rows} == {account.aid, other_account.aid}


@pytest.mark.django_db
def test_listing_needs_credentials(db):
    _error(APIClient().get("/api/v1/accounts/"), 401, "not_authenticated")


# --- the operator creates and updates; no one else ------------------------------------------


@pytest.mark.django_db
def test_the_operator_creates_an_account_with_a_token(account):
    client = token_client(_operator_token(account))
    response = client.post("/api/v1/accounts/", {
        "name": "Acme Sandbox", "timezone": "Europe/Paris", "monthly_event_quota": 1000,
    }, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    created = Account.objects.get(aid=body["aid"])
    assert (created.slug, created.timezone, created.monthly_event_quota) == (
        "acme-sandbox", "Europe/Paris", 1000)
    entry = AuditEvent.objects.for_account(created).get()
    assert entry.action == "account.created" and entry.actor_token is not None


@pytest.mark.django_db
def test_the_operator_creates_an_account_with_a_session(db):
    response = session_client(_operator()).post(
        "/api/v1/accounts", {"name": "Brand Two", "slug": "brand-2"}, format="json")
    assert response.status_code == 201, response.content
    assert Account.objects.get(slug="brand-2").name == "Brand Two"


@pytest.mark.django_db
@pytest.mark.parametrize("body", [
    {"name": ""}, {"name": "X", "timezone": "Mars/Olympus"}, {"name": "X", "slug": "no spaces"},
    {"name": "X", "retention_days": -1}, {"name": "X", "monthly_event_quota": -5},
])
def test_a_bad_account_is_refused_and_nothing_is_created(account, body):
    before = Account.objects.count()
    _error(session_client(_operator()).post("/api/v1/accounts/", body, format="json"),
           400, "invalid")
    assert Account.objects.count() == before


@pytest.mark.django_db
def test_a_taken_slug_is_a_conflict(account):
    _error(session_client(_operator()).post(
        "/api/v1/accounts/", {"name": "Other", "slug": account.slug}, format="json"),
        409, "slug_taken")


@pytest.mark.django_db
@pytest.mark.parametrize("how", ["admin_token", "admin_session", "plain_token_of_operator"])
def test_no_one_but_the_operator_creates_or_updates_accounts(account, how):
    if how == "admin_token":
        client = token_client(make_token(account, ["admin"])[1])
    elif how == "admin_session":
        client = session_client(make_user("ada", account, roles=["admin"]))
    else:  # a token the operator minted without the operator flag is an Admin token
        operator = _operator()
        client = token_client(make_token(account, ["admin"], user=operator)[1])
    before = Account.objects.count()
    _error(client.post("/api/v1/accounts/", {"name": "Mine"}, format="json"),
           403, "operator_only")
    _error(client.patch(f"/api/v1/accounts/{account.aid}/", {"enabled": False}, format="json"),
           403, "operator_only")
    assert Account.objects.count() == before
    assert Account.objects.get(pk=account.pk).enabled


@pytest.mark.django_db
def test_only_the_operator_may_mint_an_operator_token(account):
    client = session_client(make_user("ada", account, roles=["admin"]))
    _error(client.post("/api/v1/tokens/", {
        "account": account.aid, "roles": ["admin"], "site_operator": True}, format="json"),
        403, "operator_only")
    assert not AccessToken.objects.filter(site_operator=True).exists()


@pytest.mark.django_db
def test_the_operator_disables_and_enables_an_account_and_sets_its_quota(account):
    _token, member_secret = make_token(account, ["admin"])
    operator = session_client(_operator())
    response = operator.patch(f"/api/v1/accounts/{account.aid}",
                              {"enabled": False, "monthly_event_quota": 5}, format="json")
    assert response.status_code == 200
    assert response.json()["enabled"] is False and response.json()["monthly_event_quota"] == 5
    assert token_client(member_secret).get("/api/v1/me/").json() == INVALID_TOKEN
    assert operator.patch(f"/api/v1/accounts/{account.aid}/", {"enabled": True},
                          format="json").status_code == 200
    assert token_client(member_secret).get("/api/v1/me/").status_code == 200


# --- finding 8: an Admin cannot disable their account or raise its quota --------------------


@pytest.mark.django_db
@pytest.mark.parametrize("change", [
    {"enabled": False}, {"monthly_event_quota": 10**9}, {"monthly_event_quota": None},
])
def test_an_admin_cannot_disable_the_account_or_change_its_quota(account, change):
    account.monthly_event_quota = 1000
    account.save()
    for client in (token_client(make_token(account, ["admin"])[1]),
                   session_client(make_user("ada", account, roles=["admin"]))):
        body = _error(client.patch("/api/v1/account/", change, format="json"),
                      403, "operator_only")
        assert next(iter(change)) in body["message"]
    account.refresh_from_db()
    assert account.enabled and account.monthly_event_quota == 1000
    assert not AuditEvent.objects.for_account(account).filter(
        action="account.settings_changed").exists()


@pytest.mark.django_db
def test_an_admin_still_changes_the_other_settings(account):
    client = token_client(make_token(account, ["admin"])[1])
    response = client.patch("/api/v1/account", {"retention_days": 30, "enabled": True,
                                                "timezone": "Asia/Tokyo"}, format="json")
    assert response.status_code == 200, response.content
    account.refresh_from_db()
    assert (account.retention_days, account.timezone) == (30, "Asia/Tokyo")


@pytest.mark.django_db
def test_the_operator_may_change_them_through_the_account_endpoint(account):
    client = token_client(_operator_token(account))
    assert client.patch("/api/v1/account/", {"monthly_event_quota": 77},
                        format="json").status_code == 200
    assert Account.objects.get(pk=account.pk).monthly_event_quota == 77


# --- a token for an explicitly named account ------------------------------------------------


@pytest.mark.django_db
def test_a_session_must_name_the_account_of_a_new_token(account, other_account):
    ada = make_user("ada", account, roles=["admin"])
    add_membership(ada, other_account, ["admin"])
    client = session_client(ada)
    client.post("/account/switch/", {"account": other_account.pk})  # the session's current one
    _error(client.post("/api/v1/tokens/", {"roles": ["admin"]}, format="json"),
           400, "account_required")
    response = client.post("/api/v1/tokens/", {"account": account.aid, "roles": ["admin"]},
                           format="json")
    assert response.status_code == 201
    assert response.json()["account"] == account.aid
    assert AccessToken.objects.get(pk=response.json()["id"]).account == account
    me = token_client(response.json()["token"]).get("/api/v1/me/").json()
    assert me["account"]["aid"] == account.aid


@pytest.mark.django_db
@pytest.mark.parametrize("where", ["not_a_member", "no_such_account", "only_observer"])
def test_a_token_cannot_be_made_in_an_account_the_caller_does_not_administer(
    account, other_account, where
):
    ada = make_user("ada", account, roles=["admin"])
    if where == "only_observer":
        add_membership(ada, other_account, ["observer"])
    aid = "000000000000" if where == "no_such_account" else other_account.aid
    response = session_client(ada).post("/api/v1/tokens/", {"account": aid, "roles": ["observer"]},
                                        format="json")
    assert response.status_code == 403
    assert not AccessToken.objects.exists()


@pytest.mark.django_db
def test_a_token_may_name_only_its_own_account(account, other_account):
    client = token_client(make_token(account, ["admin"])[1])
    _error(client.post("/api/v1/tokens/", {"account": other_account.aid, "roles": ["admin"]},
                       format="json"), 403, "account_not_allowed")
    assert client.post("/api/v1/tokens/", {"account": account.aid, "roles": ["admin"]},
                       format="json").status_code == 201
    assert client.post("/api/v1/tokens/", {"roles": ["admin"]}, format="json").status_code == 201


# --- finding 7: a removed member's token -----------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/api/v1/me/", "/api/v1/me", "/api/v1/accounts/",
                                  "/api/v1/dashboard/", "/api/v1/tokens/", "/api/v1/profiles/"])
def test_a_removed_members_token_is_refused_everywhere(account, path):
    ada = make_user("ada", account, roles=["admin"])
    created = session_client(ada).post(
        "/api/v1/tokens/", {"account": account.aid, "roles": ["admin"]}, format="json").json()
    ada_token = token_client(created["token"])
    assert ada_token.get(path).status_code == 200
    admin = token_client(make_token(account, ["admin"])[1])
    membership = Membership.objects.get(account=account, user=ada)
    assert admin.delete(f"/api/v1/memberships/{membership.pk}").status_code == 204
    response = ada_token.get(path)
    assert response.status_code == 401 and response.json() == INVALID_TOKEN
    assert AccessToken.objects.get(pk=created["id"]).status == "revoked"


@pytest.mark.django_db
def test_a_token_whose_creator_left_without_revocation_is_refused(account):
    """Defence in depth: a membership deleted some other way still stops the token."""
    ada = make_user("ada", account, roles=["admin"])
    _token, secret = make_token(account, ["admin"], user=ada)
    Membership.objects.filter(user=ada).delete()
    assert token_client(secret).get("/api/v1/me/").json() == INVALID_TOKEN
    assert get_user_model().objects.filter(username="ada").exists()


# --- the operator `make run` creates, and the admin's account pages -------------------------


@pytest.mark.django_db
def test_the_first_user_make_run_creates_is_the_operator_and_adds_accounts_in_the_admin(
    tmp_path, client
):
    from demo.seed import seed_demo

    creds = seed_demo(credentials_file=tmp_path / "demo.json")
    assert client.login(username=creds.username, password=creds.password)
    assert client.get("/admin/cdp_site/account/add/").status_code == 200
    response = client.post("/admin/cdp_site/account/add/", {
        "slug": "brand-two", "name": "Brand Two", "enabled": "on", "timezone": "UTC",
        "retention_days": 400, "monthly_event_quota": "", "max_identifiers_per_profile": 50,
    })
    assert response.status_code == 302, response.content[:2000]
    created = Account.objects.get(slug="brand-two")
    assert AuditEvent.objects.for_account(created).get().action == "account.created"
    listing = client.get("/api/v1/accounts/").json()["results"]
    assert {"demo", "demo-sandbox", "brand-two"} <= {row["slug"] for row in listing}


@pytest.mark.django_db
def test_an_admin_sees_enabling_and_quota_read_only_in_the_admin(account, client):
    make_user("ada", account, roles=["admin"])
    assert client.login(username="ada", password="correct-horse-battery-staple")
    assert client.get("/admin/cdp_site/account/add/").status_code == 403
    page = client.get(f"/admin/cdp_site/account/{account.pk}/change/").content.decode()
    assert 'name="retention_days"' in page
    assert 'name="enabled"' not in page and 'name="monthly_event_quota"' not in page
    client.post(f"/admin/cdp_site/account/{account.pk}/change/", {
        "name": "Acme", "timezone": "UTC", "retention_days": 30, "enabled": "",
        "monthly_event_quota": 5, "max_identifiers_per_profile": 50,
    })
    account.refresh_from_db()
    assert account.enabled and account.monthly_event_quota is None
    assert account.retention_days == 30
