"""Access tokens and write keys through the API: minted once, stored hashed, refused alike."""

from __future__ import annotations

import hashlib
import hmac
from datetime import timedelta
from typing import Any

import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient

from cdp_site.access import authenticate_write_key
from cdp_site.models import AccessToken, Account, WriteKey
from tests.conftest import (
    add_membership,
    make_account,
    make_token,
    make_user,
    make_write_key,
    session_client,
    token_client,
    token_roles,
)

INVALID_TOKEN = {"code": "invalid_token", "message": "The access token is not valid."}


def _raw_row(table: str, pk: int) -> dict[str, Any]:
    """The row as PostgreSQL stores it, every column."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM {table} WHERE id = %s", [pk])  # noqa: S608
        columns = [column.name for column in cursor.description]
        return dict(zip(columns, cursor.fetchone(), strict=True))


def _create_token(client: APIClient, **body: Any) -> Any:
    body.setdefault("description", "CI")
    body.setdefault("roles", ["admin"])
    return client.post("/api/v1/tokens/", body, format="json")


# --- creation: shown once, stored hashed -------------------------------------------------


@pytest.mark.django_db
def test_created_token_secret_is_in_the_create_response_only(admin_client):
    response = _create_token(admin_client, roles=["admin"])

    assert response.status_code == 201
    body = response.json()
    secret = body["token"]
    assert secret.startswith("stk_")
    assert len(secret) > 40
    assert body["prefix"] == secret[:12]
    assert body["masked"].startswith(body["prefix"]) and secret not in body["masked"]
    assert body["roles"] == ["admin"]
    detail = admin_client.get(f"/api/v1/tokens/{body['id']}/")
    listing = admin_client.get("/api/v1/tokens/")
    for later in (detail, listing):
        assert later.status_code == 200
        assert '"token"' not in later.content.decode()
        assert secret not in later.content.decode()
        assert secret[12:] not in later.content.decode()
    assert [row["id"] for row in listing.json()["results"]].count(body["id"]) == 1


@pytest.mark.django_db
def test_database_stores_only_the_peppered_hmac_of_a_token(admin_client):
    secret = _create_token(admin_client).json()["token"]
    token = AccessToken.objects.get(prefix=secret[:12])

    row = _raw_row(AccessToken._meta.db_table, token.pk)

    expected = hmac.new(settings.TOKEN_PEPPER.encode(), secret.encode(), hashlib.sha256)
    assert row["digest"] == expected.hexdigest()
    assert row["digest"] != hashlib.sha256(secret.encode()).hexdigest()  # the pepper matters
    for column, value in row.items():
        assert secret not in str(value), column
        assert secret[12:] not in str(value), column


@pytest.mark.django_db
def test_created_token_works_as_a_bearer_token(admin_client, account):
    secret = _create_token(admin_client, roles=["admin"]).json()["token"]
    me = token_client(secret).get("/api/v1/me/")
    assert me.status_code == 200
    assert me.json()["account"]["aid"] == account.aid
    assert me.json()["principal"].startswith(f"token {secret[:12]}")


@pytest.mark.django_db
def test_created_by_is_the_signed_in_user(account):
    user = make_user("ada", account, roles=["admin"])
    response = _create_token(session_client(user), account=account.aid)
    assert response.status_code == 201
    assert response.json()["created_by"] == "ada"


# --- roles never wider than the creator's -------------------------------------------------


@pytest.mark.django_db
def test_token_cannot_carry_a_role_its_creating_token_lacks(account, admin_client):
    before = AccessToken.objects.count()

    response = _create_token(admin_client, roles=["admin", "data_manager"])

    assert response.status_code == 403
    assert response.json()["code"] == "permission_denied"
    assert "Data Manager" in response.json()["message"]
    assert AccessToken.objects.count() == before


@pytest.mark.django_db
def test_user_cannot_give_a_token_a_role_they_lack(account):
    user = make_user("ada", account, roles=["admin", "marketer"])
    client = session_client(user)

    assert _create_token(client, roles=["marketer"], account=account.aid).status_code == 201
    refused = _create_token(client, roles=["marketer", "user_search"], account=account.aid)
    assert refused.status_code == 403
    assert refused.json()["code"] == "permission_denied"


@pytest.mark.django_db
def test_operator_superuser_may_give_any_role(account):
    operator = make_user("root", is_superuser=True, is_staff=True)
    response = _create_token(session_client(operator), roles=["user_search", "data_manager"],
                             account=account.aid)
    assert response.status_code == 201


@pytest.mark.django_db
def test_token_needs_at_least_one_role(admin_client):
    response = _create_token(admin_client, roles=[])
    assert response.status_code == 400
    assert response.json()["code"] == "invalid"


@pytest.mark.django_db
def test_unknown_role_is_a_validation_error(admin_client):
    response = _create_token(admin_client, roles=["overlord"])
    assert response.status_code == 400
    assert response.json()["code"] == "invalid"
    assert "roles" in response.json()["errors"]


@pytest.mark.django_db
def test_token_minted_by_a_token_is_trimmed_when_the_human_behind_it_loses_a_role(account):
    """A token minted with a token answers to the same person: when that person loses a role,
    both lose it (else a second-generation token would keep it for ever)."""
    user = make_user("ada", account, roles=["admin", "marketer"])
    first = _create_token(session_client(user), roles=["admin", "marketer"],
                          account=account.aid).json()
    second = _create_token(token_client(first["token"]), roles=["admin", "marketer"]).json()
    assert second["created_by"] == "ada"
    boss = make_token(account, ["admin"])[1]

    membership_id = token_client(boss).get("/api/v1/memberships/").json()["results"][0]["id"]
    changed = token_client(boss).patch(
        f"/api/v1/memberships/{membership_id}/", {"roles": ["marketer"]}, format="json"
    )

    assert changed.status_code == 200
    assert token_roles(AccessToken.objects.get(pk=first["id"])) == {"marketer"}
    assert token_roles(AccessToken.objects.get(pk=second["id"])) == {"marketer"}
    assert token_client(second["token"]).get("/api/v1/tokens/").status_code == 403


# --- expiry -------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("days", [7, 30, 90])
def test_token_expires_after_the_chosen_number_of_days(admin_client, days):
    before = timezone.now()
    response = _create_token(admin_client, expires_in_days=days)
    assert response.status_code == 201
    expires_at = AccessToken.objects.get(pk=response.json()["id"]).expires_at
    assert before + timedelta(days=days) <= expires_at <= timezone.now() + timedelta(days=days)


@pytest.mark.django_db
@pytest.mark.parametrize("never", [{"expires_in_days": 0}, {"expires_in_days": None}, {}])
def test_token_may_never_expire(admin_client, never):
    response = _create_token(admin_client, **never)
    assert response.status_code == 201
    assert response.json()["expires_at"] is None


@pytest.mark.django_db
@pytest.mark.parametrize("choice", [1, 14, 365, -7, "forever", "7 days"])
def test_other_expiry_choices_are_refused(admin_client, choice):
    before = AccessToken.objects.count()
    response = _create_token(admin_client, expires_in_days=choice)
    assert response.status_code == 400
    assert response.json()["code"] == "invalid"
    assert "expires_in_days" in response.json()["errors"]
    assert AccessToken.objects.count() == before


# --- every bad token gets the same answer -------------------------------------------------


def _expired(account: Account) -> str:
    token, secret = make_token(account, expires_in_days=7)
    AccessToken.objects.filter(pk=token.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    return f"Bearer {secret}"


def _disabled(account: Account) -> str:
    token, secret = make_token(account)
    AccessToken.objects.filter(pk=token.pk).update(enabled=False)
    return f"Bearer {secret}"


def _revoked(account: Account) -> str:
    token, secret = make_token(account)
    admin = make_token(account)[1]
    assert token_client(admin).delete(f"/api/v1/tokens/{token.pk}/").status_code == 204
    return f"Bearer {secret}"


def _wrong_secret(account: Account) -> str:
    token, secret = make_token(account)
    wrong = secret[:12] + ("A" if secret[12] != "A" else "B") + secret[13:]
    assert wrong[:12] == token.prefix
    return f"Bearer {wrong}"


def _of_disabled_account(account: Account) -> str:
    _token, secret = make_token(account)
    Account.objects.filter(pk=account.pk).update(enabled=False)
    return f"Bearer {secret}"


def _outside_networks(account: Account) -> str:
    _token, secret = make_token(account, allowed_networks=["10.0.0.0/8"])
    return f"Bearer {secret}"  # the request comes from 127.0.0.1


def _write_key(account: Account) -> str:
    return f"Bearer {make_write_key(account)[1]}"


BAD_AUTHORIZATIONS = {
    "unknown": lambda account: "Bearer stk_" + "x" * 43,
    "keyword only": lambda account: "Bearer",
    "two words": lambda account: "Bearer stk_a stk_b",
    "non-ascii": lambda account: "Bearer stk_caf\u00e9",
    "no stk_ prefix": lambda account: "Bearer " + "x" * 47,
    "too long": lambda account: "Bearer stk_" + "x" * 200,
    "expired": _expired,
    "disabled": _disabled,
    "revoked": _revoked,
    "wrong secret": _wrong_secret,
    "disabled account": _of_disabled_account,
    "outside allowed networks": _outside_networks,
    "write key": _write_key,
}


@pytest.mark.django_db
@pytest.mark.parametrize("kind", sorted(BAD_AUTHORIZATIONS))
@pytest.mark.parametrize("path", ["/api/v1/me/", "/api/v1/tokens/"])
def test_bad_token_gets_401_invalid_token_whatever_is_wrong_with_it(account, kind, path):
    authorization = BAD_AUTHORIZATIONS[kind](account)
    client = APIClient()

    response = client.get(path, HTTP_AUTHORIZATION=authorization, REMOTE_ADDR="127.0.0.1")

    assert response.status_code == 401
    assert response.json() == INVALID_TOKEN
    assert response["WWW-Authenticate"] == 'Bearer realm="strata"'


@pytest.mark.django_db
def test_no_credentials_at_all_is_401_not_authenticated(db):
    response = APIClient().get("/api/v1/me/")
    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"


# --- allowed networks ---------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("networks", "address", "status"),
    [
        (["10.0.0.0/8"], "10.20.30.40", 200),
        (["10.0.0.0/8"], "192.168.1.10", 401),
        (["192.168.1.7"], "192.168.1.7", 200),
        (["192.168.1.7"], "192.168.1.8", 401),
        (["10.0.0.0/8", "2001:db8::/32"], "2001:db8::1", 200),
        (["2001:db8::/32"], "2001:db9::1", 401),
        ([], "203.0.113.9", 200),
    ],
)
def test_token_is_accepted_only_from_its_allowed_networks(
    admin_client, networks, address, status
):
    created = _create_token(admin_client, allowed_networks=networks)
    assert created.status_code == 201
    response = token_client(created.json()["token"]).get("/api/v1/me/", REMOTE_ADDR=address)
    assert response.status_code == status
    if status == 401:
        assert response.json() == INVALID_TOKEN


@pytest.mark.django_db
def test_a_forged_forwarded_for_header_does_not_get_a_token_inside_its_networks(account):
    _token, secret = make_token(account, allowed_networks=["10.0.0.0/8"])
    response = token_client(secret).get(
        "/api/v1/me/", REMOTE_ADDR="192.168.1.10", HTTP_X_FORWARDED_FOR="10.0.0.1"
    )
    assert response.status_code == 401


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("forwarded_for", "status"),
    [
        ("10.0.0.1", 200),  # the client as our proxy saw it
        ("10.0.0.1, 192.168.1.10", 401),  # a forged first entry, then the real client
        ("192.168.1.10, 10.0.0.1", 200),
    ],
)
def test_behind_a_trusted_proxy_the_client_is_the_address_the_proxy_appended(
    account, settings, forwarded_for, status
):
    settings.STRATA_TRUSTED_PROXY_HOPS = 1
    _token, secret = make_token(account, allowed_networks=["10.0.0.0/8"])
    response = token_client(secret).get(
        "/api/v1/me/", REMOTE_ADDR="172.16.0.2", HTTP_X_FORWARDED_FOR=forwarded_for
    )
    assert response.status_code == status


@pytest.mark.django_db
def test_allowed_networks_are_stored_normalised(admin_client):
    response = _create_token(admin_client, allowed_networks=[" 10.1.2.3/8 ", "192.168.0.1"])
    assert response.json()["allowed_networks"] == ["10.0.0.0/8", "192.168.0.1/32"]


@pytest.mark.django_db
@pytest.mark.parametrize("bad", ["not-a-network", "10.0.0.0/33", "300.1.1.1", ""])
def test_invalid_network_is_refused_on_create(admin_client, bad):
    before = AccessToken.objects.count()
    response = _create_token(admin_client, allowed_networks=["10.0.0.0/8", bad])
    assert response.status_code == 400
    assert response.json()["code"] in {"invalid_network", "invalid"}
    assert AccessToken.objects.count() == before


@pytest.mark.django_db
def test_invalid_network_is_refused_on_update(account, admin_client):
    token, _secret = make_token(account)
    response = admin_client.patch(
        f"/api/v1/tokens/{token.pk}/", {"allowed_networks": ["nope"]}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_network"
    token.refresh_from_db()
    assert token.allowed_networks == []


@pytest.mark.django_db
def test_narrowing_networks_takes_effect_on_the_next_request(account, admin_client):
    token, secret = make_token(account)
    client = token_client(secret)
    assert client.get("/api/v1/me/", REMOTE_ADDR="192.168.1.10").status_code == 200

    admin_client.patch(
        f"/api/v1/tokens/{token.pk}/", {"allowed_networks": ["10.0.0.0/8"]}, format="json"
    )

    assert client.get("/api/v1/me/", REMOTE_ADDR="192.168.1.10").status_code == 401
    assert client.get("/api/v1/me/", REMOTE_ADDR="10.0.0.1").status_code == 200


# --- revocation, enabling, last use -------------------------------------------------------


@pytest.mark.django_db
def test_revocation_takes_effect_on_the_very_next_request(account, admin_client):
    token, secret = make_token(account, ["admin"])
    client = token_client(secret)
    assert client.get("/api/v1/me/").status_code == 200

    assert admin_client.delete(f"/api/v1/tokens/{token.pk}/").status_code == 204

    assert client.get("/api/v1/me/").status_code == 401
    token.refresh_from_db()
    assert token.revoked_at is not None and token.enabled is False
    assert admin_client.get(f"/api/v1/tokens/{token.pk}/").json()["status"] == "revoked"


@pytest.mark.django_db
def test_a_token_may_revoke_itself(admin_client):
    me = admin_client.get("/api/v1/tokens/").json()["results"][0]
    assert admin_client.delete(f"/api/v1/tokens/{me['id']}/").status_code == 204
    assert admin_client.get("/api/v1/me/").status_code == 401


@pytest.mark.django_db
def test_revoking_twice_keeps_the_first_revocation_time(account, admin_client):
    token, _secret = make_token(account)
    admin_client.delete(f"/api/v1/tokens/{token.pk}/")
    first = AccessToken.objects.get(pk=token.pk).revoked_at
    assert admin_client.delete(f"/api/v1/tokens/{token.pk}/").status_code == 204
    assert AccessToken.objects.get(pk=token.pk).revoked_at == first


@pytest.mark.django_db
def test_disabling_and_enabling_a_token(account, admin_client):
    token, secret = make_token(account)
    client = token_client(secret)
    url = f"/api/v1/tokens/{token.pk}/"

    disabled = admin_client.patch(url, {"enabled": False}, format="json")
    assert disabled.status_code == 200
    assert disabled.json()["status"] == "disabled"
    assert client.get("/api/v1/me/").status_code == 401

    enabled = admin_client.patch(url, {"enabled": True}, format="json")
    assert enabled.status_code == 200
    assert enabled.json()["status"] == "active"
    assert client.get("/api/v1/me/").status_code == 200


@pytest.mark.django_db
def test_a_revoked_token_cannot_be_enabled_again(account, admin_client):
    token, secret = make_token(account)
    url = f"/api/v1/tokens/{token.pk}/"
    admin_client.delete(url)

    response = admin_client.patch(url, {"enabled": True}, format="json")

    assert response.status_code == 400
    assert response.json()["code"] == "invalid"
    token.refresh_from_db()
    assert token.enabled is False
    assert token_client(secret).get("/api/v1/me/").status_code == 401


@pytest.mark.django_db
def test_patch_changes_the_description(account, admin_client):
    token, _secret = make_token(account)
    response = admin_client.patch(
        f"/api/v1/tokens/{token.pk}/", {"description": "nightly export"}, format="json"
    )
    assert response.status_code == 200
    assert response.json()["description"] == "nightly export"
    token.refresh_from_db()
    assert token.description == "nightly export"


@pytest.mark.django_db
def test_patch_cannot_change_roles_or_expiry(account, admin_client):
    token, _secret = make_token(account, ["observer", "admin"])
    admin_client.patch(
        f"/api/v1/tokens/{token.pk}/", {"roles": ["admin"], "expires_at": None,
                                         "expires_in_days": 7}, format="json",
    )
    token.refresh_from_db()
    assert token_roles(token) == {"observer", "admin"}
    assert token.expires_at is None


@pytest.mark.django_db
def test_last_used_is_written_at_most_once_a_minute(account):
    token, secret = make_token(account)
    client = token_client(secret)
    assert token.last_used_at is None

    client.get("/api/v1/me/")
    token.refresh_from_db()
    first = token.last_used_at
    assert first is not None

    client.get("/api/v1/me/")
    token.refresh_from_db()
    assert token.last_used_at == first

    two_minutes_ago = timezone.now() - timedelta(minutes=2)
    AccessToken.objects.filter(pk=token.pk).update(last_used_at=two_minutes_ago)
    client.get("/api/v1/me/")
    token.refresh_from_db()
    assert token.last_used_at > two_minutes_ago + timedelta(minutes=1)


@pytest.mark.django_db
def test_a_refused_token_does_not_record_a_use(account):
    token, secret = make_token(account, allowed_networks=["10.0.0.0/8"])
    token_client(secret).get("/api/v1/me/", REMOTE_ADDR="192.168.0.1")
    token.refresh_from_db()
    assert token.last_used_at is None


@pytest.mark.django_db
def test_token_of_a_disabled_account_is_refused_and_works_again_when_reenabled(account):
    _token, secret = make_token(account)
    client = token_client(secret)
    Account.objects.filter(pk=account.pk).update(enabled=False)
    assert client.get("/api/v1/me/").status_code == 401
    Account.objects.filter(pk=account.pk).update(enabled=True)
    assert client.get("/api/v1/me/").status_code == 200


@pytest.mark.django_db
def test_token_list_filters_by_status(account, admin_client):
    revoked, _ = make_token(account, description="revoked")
    disabled, _ = make_token(account, description="disabled")
    admin_client.delete(f"/api/v1/tokens/{revoked.pk}/")
    admin_client.patch(f"/api/v1/tokens/{disabled.pk}/", {"enabled": False}, format="json")

    def ids(status: str) -> set[int]:
        results = admin_client.get("/api/v1/tokens/", {"status": status}).json()["results"]
        return {row["id"] for row in results}

    assert ids("revoked") == {revoked.pk}
    assert ids("disabled") == {disabled.pk}
    assert revoked.pk not in ids("active") and disabled.pk not in ids("active")


# --- write keys ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_created_write_key_is_shown_once_and_stored_hashed(admin_client):
    response = admin_client.post(
        "/api/v1/write-keys/", {"name": "Shop", "stream": "web"}, format="json"
    )

    assert response.status_code == 201
    body = response.json()
    key = body["key"]
    assert key.startswith("swk_")
    assert body["prefix"] == key[:12]
    assert body["stream"] == "web"
    for later in (admin_client.get(f"/api/v1/write-keys/{body['id']}/"),
                  admin_client.get("/api/v1/write-keys/")):
        assert later.status_code == 200
        assert key not in later.content.decode()
        assert '"key"' not in later.content.decode()
    row = _raw_row(WriteKey._meta.db_table, body["id"])
    for column, value in row.items():
        assert key not in str(value), column
        assert key[12:] not in str(value), column
    expected = hmac.new(settings.TOKEN_PEPPER.encode(), key.encode(), hashlib.sha256)
    assert row["digest"] == expected.hexdigest()


@pytest.mark.django_db
def test_write_key_is_not_a_management_api_token(account):
    _key, secret = make_write_key(account)
    for path in ("/api/v1/me/", "/api/v1/dashboard/", "/api/v1/tokens/"):
        response = token_client(secret).get(path)
        assert response.status_code == 401
        assert response.json() == INVALID_TOKEN


@pytest.mark.django_db
def test_revoked_write_key_no_longer_authenticates(account, admin_client):
    created = admin_client.post("/api/v1/write-keys/", {"name": "Shop"}, format="json").json()
    assert authenticate_write_key(created["key"]).pk == created["id"]

    assert admin_client.delete(f"/api/v1/write-keys/{created['id']}/").status_code == 204

    assert authenticate_write_key(created["key"]) is None
    detail = admin_client.get(f"/api/v1/write-keys/{created['id']}/").json()
    assert detail["revoked_at"] is not None
    assert detail["enabled"] is False


@pytest.mark.django_db
def test_write_key_of_a_disabled_account_does_not_authenticate(account):
    _key, secret = make_write_key(account)
    Account.objects.filter(pk=account.pk).update(enabled=False)
    assert authenticate_write_key(secret) is None


@pytest.mark.django_db
def test_write_key_needs_a_name(admin_client):
    response = admin_client.post("/api/v1/write-keys/", {}, format="json")
    assert response.status_code == 400
    assert response.json()["code"] == "invalid"
    assert "name" in response.json()["errors"]


@pytest.mark.django_db
def test_write_key_of_one_account_is_not_another_accounts(account):
    other = make_account("Globex")
    _key, secret = make_write_key(other)
    assert authenticate_write_key(secret).account == other


@pytest.mark.django_db
def test_a_member_of_two_accounts_mints_tokens_in_the_account_they_name(account, other_account):
    user = make_user("ada", account, roles=["admin"])
    add_membership(user, other_account, ["admin"])
    for target in (other_account, account):
        response = _create_token(session_client(user), account=target.aid)
        assert AccessToken.objects.get(pk=response.json()["id"]).account == target
