"""The audit log: one event per change to access or settings, readable by Admins only; and the
membership rules that go with it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

from cdp_site.models import AccessToken, Account, AuditEvent, Membership, WriteKey
from tests.conftest import (
    audit_events,
    make_token,
    make_user,
    make_write_key,
    session_client,
    token_client,
    token_roles,
)

ROLES_BUT_ADMIN = [
    "audience_manager", "campaign_manager", "content_manager", "data_manager",
    "discovery_insights", "experience_manager", "goal_manager", "marketer", "observer",
    "user_search",
]


@pytest.fixture
def admin(account: Account) -> tuple[AccessToken, APIClient]:
    token, secret = make_token(account, ["admin"], description="ops")
    return token, token_client(secret)


def _the_new_event(account: Account, before: set[int]) -> AuditEvent:
    new = [event for event in audit_events(account) if event.pk not in before]
    assert len(new) == 1, [event.action for event in new]
    return new[0]


def _ids(account: Account) -> set[int]:
    return {event.pk for event in audit_events(account)}


def _membership(account: Account, username: str) -> Membership:
    return Membership.objects.get(account=account, user__username=username)


def _member_roles(account: Account, username: str) -> set[str]:
    return set(_membership(account, username).roles.values_list("code", flat=True))


# --- each change produces exactly one event ------------------------------------------------


@dataclass(frozen=True)
class AuditedChange:
    action: str
    target_type: str
    # prepare(account) -> the object to change (made before counting events)
    prepare: Callable[[Account], Any]
    # perform(client, account, object) -> (target id, the changes the event records)
    perform: Callable[[APIClient, Account, Any], tuple[str, dict[str, Any]]]


def _nothing(account: Account) -> None:
    return None


def _old_token(account: Account) -> AccessToken:
    return make_token(account, description="old name")[0]


def _bob(account: Account) -> Membership:
    make_user("bob", account, roles=["observer"])
    return _membership(account, "bob")


def _create_token(client: APIClient, account: Account, _: None) -> tuple[str, dict[str, Any]]:
    body = client.post(
        "/api/v1/tokens/",
        {"description": "export", "roles": ["admin"], "expires_in_days": 30,
         "allowed_networks": ["10.0.0.0/8"]},
        format="json",
    ).json()
    token = AccessToken.objects.get(pk=body["id"])
    return str(token.pk), {
        "roles": ["admin"], "expires_at": token.expires_at.isoformat(),
        "allowed_networks": ["10.0.0.0/8"],
    }


def _update_token(
    client: APIClient, account: Account, token: AccessToken
) -> tuple[str, dict[str, Any]]:
    client.patch(f"/api/v1/tokens/{token.pk}/", {"description": "new name", "enabled": False},
                 format="json")
    return str(token.pk), {"description": ["old name", "new name"], "enabled": [True, False]}


def _revoke_token(
    client: APIClient, account: Account, token: AccessToken
) -> tuple[str, dict[str, Any]]:
    client.delete(f"/api/v1/tokens/{token.pk}/")
    return str(token.pk), {}


def _create_write_key(client: APIClient, account: Account, _: None) -> tuple[str, dict[str, Any]]:
    body = client.post("/api/v1/write-keys/", {"name": "Shop", "stream": "web"},
                       format="json").json()
    return str(body["id"]), {"stream": "web"}


def _revoke_write_key(
    client: APIClient, account: Account, key: WriteKey
) -> tuple[str, dict[str, Any]]:
    client.delete(f"/api/v1/write-keys/{key.pk}/")
    return str(key.pk), {}


def _invite_member(client: APIClient, account: Account, _: None) -> tuple[str, dict[str, Any]]:
    invitation = client.post("/api/v1/memberships/", {
        "email": "Carol@Example.com", "roles": ["observer", "marketer"]}, format="json").json()
    return str(invitation["id"]), {"email": "carol@example.com", "roles": ["marketer", "observer"]}


def _remove_member(
    client: APIClient, account: Account, membership: Membership
) -> tuple[str, dict[str, Any]]:
    client.delete(f"/api/v1/memberships/{membership.pk}/")
    return str(membership.pk), {"user": "bob", "roles": ["observer"]}


def _change_roles(
    client: APIClient, account: Account, membership: Membership
) -> tuple[str, dict[str, Any]]:
    client.patch(f"/api/v1/memberships/{membership.pk}/", {"roles": ["marketer", "observer"]},
                 format="json")
    return str(membership.pk), {"roles": [["observer"], ["marketer", "observer"]]}


def _change_settings(client: APIClient, account: Account, _: None) -> tuple[str, dict[str, Any]]:
    client.patch("/api/v1/account/", {"timezone": "Europe/Paris", "retention_days": 90},
                 format="json")
    return str(account.pk), {"timezone": ["UTC", "Europe/Paris"], "retention_days": [400, 90]}


AUDITED_CHANGES: dict[str, AuditedChange] = {
    "token created": AuditedChange("token.created", "accesstoken", _nothing, _create_token),
    "token updated": AuditedChange("token.updated", "accesstoken", _old_token, _update_token),
    "token revoked": AuditedChange("token.revoked", "accesstoken", _old_token, _revoke_token),
    "write key created": AuditedChange(
        "write_key.created", "writekey", _nothing, _create_write_key
    ),
    "write key revoked": AuditedChange(
        "write_key.revoked", "writekey", lambda account: make_write_key(account)[0],
        _revoke_write_key,
    ),
    "member invited": AuditedChange("membership.invited", "invitation", _nothing,
                                    _invite_member),
    "member removed": AuditedChange("membership.removed", "membership", _bob, _remove_member),
    "roles changed": AuditedChange(
        "membership.roles_changed", "membership", _bob, _change_roles
    ),
    "account settings changed": AuditedChange(
        "account.settings_changed", "account", _nothing, _change_settings
    ),
}


@pytest.mark.django_db
@pytest.mark.parametrize("change", sorted(AUDITED_CHANGES))
def test_change_is_recorded_as_exactly_one_audit_event(change, account, admin):
    audited = AUDITED_CHANGES[change]
    actor_token, client = admin
    target = audited.prepare(account)
    before = _ids(account)

    target_id, changes = audited.perform(client, account, target)

    event = _the_new_event(account, before)
    assert event.action == audited.action
    assert event.actor_label == f"token {actor_token.prefix}… (ops)"
    assert event.actor_token == actor_token
    assert event.actor_user is None
    assert event.target_type == audited.target_type
    assert event.target_id == target_id
    assert event.target_label
    assert event.changes == changes
    assert event.ip_address == "127.0.0.1"
    # ...and the API shows it as recorded.
    shown = client.get(f"/api/v1/audit-log/{event.pk}/").json()
    assert shown["action"] == audited.action
    assert shown["actor_label"] == event.actor_label
    assert shown["target_id"] == target_id
    assert shown["changes"] == changes


@pytest.mark.django_db
def test_a_signed_in_users_change_names_the_user(account):
    user = make_user("ada", account, roles=["admin"])
    before = _ids(account)

    session_client(user).patch("/api/v1/account/", {"name": "Acme Corp"}, format="json")

    event = _the_new_event(account, before)
    assert event.action == "account.settings_changed"
    assert event.actor_label == "ada"
    assert event.actor_user == user
    assert event.actor_token is None
    assert event.changes == {"name": ["Acme", "Acme Corp"]}


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("patch", "/api/v1/account/", {"timezone": "UTC"}),
        ("patch", "/api/v1/account/", {}),
        ("patch", "/api/v1/tokens/{token}/", {"description": "same"}),
        ("patch", "/api/v1/memberships/{membership}/", {"roles": ["observer"]}),
    ],
)
def test_a_change_that_changes_nothing_is_not_recorded(account, admin, method, path, body):
    _token, client = admin
    token, _secret = make_token(account, description="same")
    make_user("bob", account, roles=["observer"])
    url = path.format(token=token.pk, membership=_membership(account, "bob").pk)
    before = _ids(account)

    response = getattr(client, method)(url, body, format="json")

    assert response.status_code == 200
    assert _ids(account) == before


@pytest.mark.django_db
def test_refused_changes_are_not_recorded(account, admin):
    _token, client = admin
    before = _ids(account)
    client.patch("/api/v1/account/", {"retention_days": -1}, format="json")
    client.post("/api/v1/tokens/", {"roles": ["data_manager"]}, format="json")
    client.post("/api/v1/tokens/", {"roles": ["admin"], "allowed_networks": ["x"]}, format="json")
    client.post("/api/v1/memberships/", {"user": "ghost", "roles": []}, format="json")
    assert _ids(account) == before


@pytest.mark.django_db
def test_account_settings_patch_cannot_change_the_aid_or_slug(account, admin):
    _token, client = admin
    response = client.patch("/api/v1/account/", {"aid": "hijacked", "slug": "other"},
                            format="json")
    assert response.status_code == 200
    account.refresh_from_db()
    assert account.aid != "hijacked"
    assert account.slug == "acme"


# --- who may read it, and how -------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("role", ROLES_BUT_ADMIN)
def test_only_admins_may_read_the_audit_log(account, role):
    make_write_key(account)
    event = audit_events(account)[0]
    _token, secret = make_token(account, [role])
    client = token_client(secret)
    for path in ("/api/v1/audit-log/", f"/api/v1/audit-log/{event.pk}/"):
        response = client.get(path)
        assert response.status_code == 403
        assert response.json()["code"] == "permission_denied"


@pytest.mark.django_db
def test_admins_read_the_audit_log(account, admin):
    _token, client = admin
    response = client.get("/api/v1/audit-log/")
    assert response.status_code == 200
    assert response.json()["count"] == len(audit_events(account)) == 1


@pytest.mark.django_db
def test_audit_log_cannot_be_written_through_the_api(account, admin):
    _token, client = admin
    event = audit_events(account)[0]
    assert client.post("/api/v1/audit-log/", {"action": "token.created"},
                       format="json").status_code == 405
    assert client.delete(f"/api/v1/audit-log/{event.pk}/").status_code == 405
    assert client.patch(f"/api/v1/audit-log/{event.pk}/", {"action": "x"},
                        format="json").status_code == 405
    assert AuditEvent.objects.filter(pk=event.pk, action="token.created").exists()


@pytest.mark.django_db
def test_audit_log_lists_newest_first(account, admin):
    _token, client = admin
    _create_write_key(client, account, None)
    _revoke_token(client, account, _old_token(account))
    _change_settings(client, account, None)

    results = client.get("/api/v1/audit-log/").json()["results"]

    assert [row["action"] for row in results] == [
        "account.settings_changed", "token.revoked", "token.created",  # make_token's creation
        "write_key.created", "token.created",  # the fixture's admin token
    ]
    stamps = [row["created_at"] for row in results]
    assert stamps == sorted(stamps, reverse=True)


@pytest.mark.django_db
def test_audit_log_filters_by_action_and_target_type(account, admin):
    _token, client = admin
    _create_write_key(client, account, None)
    _revoke_write_key(client, account, make_write_key(account)[0])
    _change_settings(client, account, None)

    def actions(**query: str) -> list[str]:
        response = client.get("/api/v1/audit-log/", query)
        assert response.status_code == 200
        return [row["action"] for row in response.json()["results"]]

    assert actions(action="write_key.revoked") == ["write_key.revoked"]
    assert actions(action="account.settings_changed") == ["account.settings_changed"]
    assert actions(target_type="writekey") == [
        "write_key.revoked", "write_key.created", "write_key.created"
    ]
    assert actions(action="membership.added") == []


@pytest.mark.django_db
def test_audit_log_refuses_an_unknown_action_filter(admin):
    _token, client = admin
    response = client.get("/api/v1/audit-log/", {"action": "nonsense"})
    assert response.status_code == 400
    assert response.json()["code"] == "invalid"


# --- memberships --------------------------------------------------------------------------


@pytest.mark.django_db
def test_removing_a_members_role_trims_it_from_the_tokens_they_created(account, admin):
    _token, client = admin
    ada = make_user("ada", account, roles=["admin", "audience_manager", "marketer"])
    created = session_client(ada).post(
        "/api/v1/tokens/", {"description": "ada's", "roles": ["audience_manager", "marketer"],
                            "account": account.aid}, format="json",
    ).json()
    someone_elses, _secret = make_token(account, ["audience_manager", "admin"])

    response = client.patch(f"/api/v1/memberships/{_membership(account, 'ada').pk}/",
                            {"roles": ["admin", "marketer"]}, format="json")

    assert response.status_code == 200
    assert token_roles(AccessToken.objects.get(pk=created["id"])) == {"marketer"}
    assert token_roles(someone_elses) == {"audience_manager", "admin"}
    ada_token = token_client(created["token"])
    assert "audiences.delete" not in ada_token.get("/api/v1/me/").json()["permissions"]


@pytest.mark.django_db
def test_removing_a_member_strips_the_tokens_they_created(account, admin, other_account):
    _token, client = admin
    ada = make_user("ada", account, roles=["admin", "marketer"])
    created = session_client(ada).post(
        "/api/v1/tokens/", {"description": "ada's", "roles": ["admin", "marketer"],
                            "account": account.aid}, format="json",
    ).json()

    response = client.delete(f"/api/v1/memberships/{_membership(account, 'ada').pk}/")

    assert response.status_code == 204
    assert token_roles(AccessToken.objects.get(pk=created["id"])) == set()
    assert AccessToken.objects.get(pk=created["id"]).status == "revoked"
    for path in ("/api/v1/me/", "/api/v1/dashboard/"):  # issue #18 finding 7
        assert token_client(created["token"]).get(path).json()["code"] == "invalid_token"
    assert get_user_model().objects.filter(username="ada").exists()


@pytest.mark.django_db
def test_a_members_tokens_in_another_account_keep_their_roles(account, other_account, admin):
    _token, client = admin
    ada = make_user("ada", other_account, roles=["admin", "marketer"])
    theirs, _secret = make_token(other_account, ["marketer"], user=ada)
    Membership.objects.create(account=account, user=ada).roles.set(
        _membership(other_account, "ada").roles.all()
    )

    client.delete(f"/api/v1/memberships/{_membership(account, 'ada').pk}/")

    assert token_roles(theirs) == {"marketer"}


@pytest.mark.django_db
def test_membership_roles_must_exist(account, admin):
    _token, client = admin
    make_user("bob", account, roles=["observer"])
    response = client.patch(f"/api/v1/memberships/{_membership(account, 'bob').pk}/",
                            {"roles": ["overlord"]}, format="json")
    assert response.status_code == 400
    assert response.json()["code"] == "invalid"
    assert "roles" in response.json()["errors"]
