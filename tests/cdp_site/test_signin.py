"""Sign-in brute force (#18 finding 1): wrong passwords are limited per user name and per
client address (django-axes, behind the trusted proxies), a locked-out sign-in answers 429 even
with the right password. (The password policy where a member sets one: the invitation tests.)"""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from cdp_site.models import Account
from tests.conftest import PASSWORD, make_user

pytestmark = pytest.mark.django_db
LOGIN = "/admin/login/"


def sign_in(client: Client, username: str, password: str, address: str = "198.51.100.7",
            **headers: str) -> Any:
    return client.post(LOGIN, {"username": username, "password": password, "next": "/admin/"},
                       REMOTE_ADDR=address, **headers)


def test_wrong_passwords_lock_the_user_out_even_with_the_right_one(account: Account) -> None:
    make_user("ann", account)
    client = Client()
    for _ in range(4):
        assert sign_in(client, "ann", "wrong").status_code == 200  # the form, with its error
    assert sign_in(client, "ann", "wrong").status_code == 429  # the fifth locks
    locked = sign_in(client, "ann", PASSWORD)
    assert locked.status_code == 429
    assert "Too many failed sign-ins" in locked.content.decode()
    assert int(locked["Retry-After"]) > 0
    # the user stays locked from any other address: the count is per user name too
    assert sign_in(Client(), "ann", PASSWORD, address="203.0.113.50").status_code == 429


def test_one_address_trying_many_users_is_locked_out(account: Account) -> None:
    make_user("bob", account)
    client = Client()
    for n in range(5):
        sign_in(client, f"nobody{n}", "guess")
    assert sign_in(client, "bob", PASSWORD).status_code == 429
    assert sign_in(Client(), "bob", PASSWORD, address="203.0.113.51").status_code == 302


def test_the_lockout_answers_json_to_a_json_client(account: Account) -> None:
    make_user("cy", account)
    client = Client()
    for _ in range(5):
        sign_in(client, "cy", "wrong")
    locked = sign_in(client, "cy", PASSWORD, HTTP_ACCEPT="application/json")
    assert locked.status_code == 429
    assert locked.json()["code"] == "too_many_attempts"


def test_a_success_resets_the_count(account: Account) -> None:
    make_user("dee", account)
    client = Client()
    for _ in range(4):
        sign_in(client, "dee", "wrong")
    assert sign_in(client, "dee", PASSWORD).status_code == 302
    for _ in range(4):
        sign_in(Client(), "dee", "wrong")
    assert sign_in(Client(), "dee", PASSWORD).status_code == 302


def test_behind_a_trusted_proxy_the_forwarded_address_is_counted(account: Account,
                                                                  settings: Any) -> None:
    settings.STRATA_TRUSTED_PROXY_HOPS = 1
    make_user("eve", account)
    for n in range(5):  # every attempt through the same proxy, from one client
        sign_in(Client(), f"nobody{n}", "guess", address="127.0.0.1",
                HTTP_X_FORWARDED_FOR="192.0.2.10")
    assert sign_in(Client(), "eve", PASSWORD, address="127.0.0.1",
                   HTTP_X_FORWARDED_FOR="192.0.2.10").status_code == 429
    # another client behind the same proxy is not locked out
    assert sign_in(Client(), "eve", PASSWORD, address="127.0.0.1",
                   HTTP_X_FORWARDED_FOR="192.0.2.11").status_code == 302
