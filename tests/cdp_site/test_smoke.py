from __future__ import annotations

from tests.conftest import token_client


def test_me_answers_for_an_admin_token(admin_client, account):
    response = admin_client.get("/api/v1/me/")
    assert response.status_code == 200
    assert response.json()["account"]["aid"] == account.aid
    assert "admin.edit" in response.json()["permissions"]


def test_unknown_token_is_refused_with_invalid_token(db):
    response = token_client("stk_not-a-real-token").get("/api/v1/me/")
    assert response.status_code == 401
    assert response.json()["code"] == "invalid_token"
