"""docs/api.md's quick start, step by step (issue #12 item 10): a token made on the admin's
page, then used with Bearer; and a script that signs in with a session and sends the CSRF
cookie back in X-CSRFToken."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from cdp_site.models import Role, WriteKey
from tests.conftest import PASSWORD, make_user


def _signed_in(username: str) -> Client:
    """Sign in through the login form, CSRF checks on, as a browser or script does."""
    client = Client(enforce_csrf_checks=True)
    client.get("/admin/login/")
    response = client.post("/admin/login/?next=/admin/", {
        "username": username, "password": PASSWORD,
        "csrfmiddlewaretoken": client.cookies["csrftoken"].value,
    })
    assert response.status_code == 302, response.content[:500]
    return client


@pytest.mark.django_db
def test_a_token_made_on_the_page_works_as_a_bearer_token(account):
    make_user("ada", account, roles=["admin"])
    client = _signed_in("ada")
    form = client.get("/admin/cdp_site/accesstoken/add/")
    assert form.status_code == 200 and b'name="account"' in form.content
    created = client.post("/admin/cdp_site/accesstoken/add/", {
        "account": account.pk, "description": "quick start", "expiry": 30,
        "roles": [Role.objects.get(code="admin").pk],
        "csrfmiddlewaretoken": client.cookies["csrftoken"].value,
    })
    assert created.status_code == 200
    secret = re.search(rb"stk_[A-Za-z0-9_-]{20,}", created.content)
    assert secret is not None, created.content[:2000]
    me = Client().get("/api/v1/me", HTTP_AUTHORIZATION=f"Bearer {secret.group(0).decode()}")
    assert me.status_code == 200 and me.json()["account"]["aid"] == account.aid


@pytest.mark.django_db
def test_a_session_with_the_csrf_header_may_write(account):
    make_user("ada", account, roles=["admin"])
    client = _signed_in("ada")
    csrf = client.cookies["csrftoken"].value
    refused = client.post("/api/v1/write-keys/", {"name": "Site"},
                          content_type="application/json")
    assert refused.status_code == 403 and refused.json()["code"] == "permission_denied"
    created = client.post("/api/v1/write-keys/", {"name": "Site"},
                          content_type="application/json", HTTP_X_CSRFTOKEN=csrf)
    assert created.status_code == 201, created.content
    assert WriteKey.objects.for_account(account).get().name == "Site"
    token = client.post("/api/v1/tokens/", {"account": account.aid, "roles": ["admin"]},
                        content_type="application/json", HTTP_X_CSRFTOKEN=csrf)
    assert token.status_code == 201 and token.json()["token"].startswith("stk_")
