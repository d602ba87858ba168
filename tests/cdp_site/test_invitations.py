"""Adding a member is inviting an email address (issue #18 finding 6): the same answer whether
or not the address has a user anywhere; the emailed link lets an existing user join after
signing in, and anyone else choose a password the site's validators accept."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.test import Client
from django.utils import timezone

from cdp_site.models import AuditEvent, Invitation, Membership
from tests.conftest import PASSWORD, make_account, make_token, make_user, token_client

LINK = re.compile(r"https?://[^/\s]+(/invitations/inv_[\w-]+/)")
STRONG = "tangerine-otter-compass-41"
VOLATILE = {"id", "email", "created_at", "expires_at"}


@pytest.fixture
def committing(django_capture_on_commit_callbacks: Any) -> Callable[[Callable[[], Any]], Any]:
    """The email leaves once the invitation commits; a test's transaction never does, so a
    request's commit callbacks run as it ends (pytest-django's capture, executing them)."""

    def run(request: Callable[[], Any]) -> Any:
        with django_capture_on_commit_callbacks(execute=True):
            return request()

    return run


@pytest.fixture
def invite(committing: Any) -> Callable[..., Any]:
    def post(client: Any, email: str, roles: list[str] | None = None) -> Any:
        return committing(lambda: client.post(
            "/api/v1/memberships/", {"email": email, "roles": roles or ["observer"]},
            format="json"))

    return post


def _link_to(email: str) -> str:
    sent = [message for message in mail.outbox if message.to == [email]]
    assert len(sent) == 1, [message.to for message in mail.outbox]
    match = LINK.search(sent[0].body)
    assert match is not None, sent[0].body
    return match.group(1)


@pytest.fixture
def admin(account: Any) -> Any:
    return token_client(make_token(account, ["admin"])[1])


@pytest.mark.django_db
def test_the_answer_is_the_same_whether_or_not_the_address_has_a_user(account, admin, invite):
    elsewhere = make_account("Globex")
    make_user("bob", elsewhere, roles=["admin"])  # bob@example.com exists, in another account
    known = invite(admin, "bob@example.com")
    unknown = invite(admin, "nobody@example.com")
    assert known.status_code == unknown.status_code == 202
    strip = lambda body: {k: v for k, v in body.items() if k not in VOLATILE}  # noqa: E731
    assert strip(known.json()) == strip(unknown.json())
    assert known.json()["status"] == "pending" and known.json()["roles"] == ["observer"]
    assert set(known.json()) == set(unknown.json())
    assert not Membership.objects.for_account(account).exists()
    assert len(mail.outbox) == 2  # each address is told
    assert Invitation.objects.for_account(account).count() == 2
    assert all(len(row.digest) == 64 for row in Invitation.objects.all())
    secret = _link_to("nobody@example.com").split("/")[2]
    assert not Invitation.objects.filter(digest__contains=secret).exists()  # stored hashed


@pytest.mark.django_db
def test_an_unknown_address_joins_by_choosing_a_password_the_validators_accept(
    account, admin, invite
):
    invite(admin, "New.Person@Example.com", ["marketer"])
    link = _link_to("new.person@example.com")
    browser = Client()
    page = browser.get(link)
    assert page.status_code == 200 and b"Choose a password" in page.content
    for weak in ("1", "password", "12345678901"):
        refused = browser.post(link, {"password1": weak, "password2": weak})
        assert refused.status_code == 200 and b"errorlist" in refused.content
    assert browser.post(link, {"password1": STRONG, "password2": "other-" + STRONG}
                        ).status_code == 200
    assert not get_user_model().objects.filter(email="new.person@example.com").exists()

    joined = browser.post(link, {"password1": STRONG, "password2": STRONG})
    assert joined.status_code == 302
    user = get_user_model().objects.get(email="new.person@example.com")
    assert user.username == "new.person@example.com" and user.check_password(STRONG)
    membership = Membership.objects.get(account=account, user=user)
    assert list(membership.roles.values_list("code", flat=True)) == ["marketer"]
    assert browser.get("/api/v1/me/").json()["account"]["aid"] == account.aid
    assert AuditEvent.objects.for_account(account).filter(action="membership.added").exists()
    assert Client().get(link).status_code == 404  # used once


@pytest.mark.django_db
def test_an_existing_user_signs_in_and_accepts(account, admin, invite):
    bob = make_user("bob", make_account("Globex"), roles=["admin"])
    invite(admin, "BOB@example.com", ["observer"])
    link = _link_to("bob@example.com")
    anonymous = Client()
    assert b"Sign in to accept" in anonymous.get(link).content
    assert anonymous.post(link, {"password1": STRONG, "password2": STRONG}).status_code == 200
    assert get_user_model().objects.filter(email__iexact="bob@example.com").count() == 1

    eve = Client()
    make_user("eve", account, roles=["observer"])
    assert eve.login(username="eve", password=PASSWORD)
    eve.post(link)
    assert not Membership.objects.filter(account=account, user=bob).exists()

    signed_in = Client()
    assert signed_in.login(username="bob", password=PASSWORD)
    assert b"Join Acme" in signed_in.get(link).content
    assert signed_in.post(link).status_code == 302
    assert Membership.objects.filter(account=account, user=bob).exists()
    assert signed_in.get(link).status_code == 404


@pytest.mark.django_db
def test_a_revoked_or_expired_invitation_link_is_refused(account, admin, invite):
    first = invite(admin, "late@example.com").json()
    late = _link_to("late@example.com")
    assert admin.delete(f"/api/v1/invitations/{first['id']}").status_code == 204
    assert admin.get(f"/api/v1/invitations/{first['id']}/").json()["status"] == "revoked"
    assert Client().get(late).status_code == 404
    mail.outbox.clear()
    invite(admin, "late@example.com")
    Invitation.objects.filter(email="late@example.com", revoked_at__isnull=True).update(
        expires_at=timezone.now() - timedelta(seconds=1))
    expired = _link_to("late@example.com")
    assert Client().post(expired, {"password1": STRONG, "password2": STRONG}).status_code == 404
    assert not get_user_model().objects.filter(email="late@example.com").exists()


@pytest.mark.django_db
@pytest.mark.parametrize("body", [{"email": "not-an-email", "roles": ["observer"]},
                                  {"email": "a@example.com", "roles": ["no-such-role"]},
                                  {"user": "bob", "roles": ["observer"]}])
def test_a_bad_invitation_is_refused_and_nothing_is_stored(account, admin, body):
    response = admin.post("/api/v1/memberships/", body, format="json")
    assert response.status_code == 400 and response.json()["code"] == "invalid"
    assert not Invitation.objects.exists()


@pytest.mark.django_db
def test_the_admin_member_page_invites_by_email(account, committing):
    make_user("ada", account, roles=["admin"])
    browser = Client()
    assert browser.login(username="ada", password=PASSWORD)
    page = browser.get("/admin/cdp_site/membership/add/").content.decode()
    assert 'name="email"' in page and 'type="password"' not in page
    response = committing(lambda: browser.post(
        "/admin/cdp_site/membership/add/", {"email": "guest@example.com", "roles": ["2"]}))
    assert response.status_code == 302
    assert _link_to("guest@example.com")
