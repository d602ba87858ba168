"""Builders for privacy tests: requests made through the API and run by django-q2 in this
process (its sync mode), and a search of every text and JSON column for a value."""

from __future__ import annotations

from typing import Any

from django.db import connection
from django_q.conf import Conf

from cdp_site.models import Account
from tests.conftest import make_token, token_client
from tests.profiles.conftest import basic_auth
from tests.profiles.processing import run


def api(account: Account, *roles: str) -> Any:
    _token, secret = make_token(account, roles)
    return token_client(secret)


def q_sync(monkeypatch: Any) -> None:
    monkeypatch.setattr(Conf, "SYNC", True)


def send_consent(journey: Any, **choices: bool) -> None:
    """A Segment track carrying the visitor's consent choices, processed."""
    reply = journey.client.post(
        "/v1/track", data={"anonymousId": journey.cookie, "event": "consent_changed",
                           "context": {"consent": {"categoryPreferences": choices}}},
        content_type="application/json", HTTP_AUTHORIZATION=basic_auth(journey.secret))
    assert reply.status_code == 200, reply.content
    run(journey.account)


def make_request(client: Any, capture: Any, **body: Any) -> dict[str, Any]:
    """POST a request and run its task once the transaction commits; the request as polled."""
    with capture(execute=True):
        response = client.post("/api/v1/privacy-requests/", body, format="json")
    assert response.status_code == 202, response.content
    made = response.json()
    polled = client.get(f"/api/v1/privacy-requests/{made['id']}/")
    assert polled.status_code == 200, polled.content
    return dict(polled.json())


_COLUMNS = """
SELECT c.table_name, c.column_name FROM information_schema.columns c
JOIN information_schema.tables t ON t.table_name = c.table_name
    AND t.table_schema = c.table_schema
WHERE c.table_schema = 'public' AND t.table_type = 'BASE TABLE'
  AND c.data_type IN ('text', 'character varying', 'jsonb', 'json')
ORDER BY 1, 2
"""


def tables_holding(*needles: str) -> list[str]:
    """``table.column`` of every text and JSON column (partitions included) holding one of the
    needles, case-insensitively."""
    found = []
    with connection.cursor() as cursor:
        cursor.execute(_COLUMNS)
        columns = cursor.fetchall()
        for table, column in columns:
            for needle in needles:
                cursor.execute(
                    # names from the catalog, the needle bound
                    f'SELECT 1 FROM "{table}" WHERE "{column}"::text ILIKE %s LIMIT 1',  # noqa: S608
                    [f"%{needle}%"])
                if cursor.fetchone():
                    found.append(f"{table}.{column}")
    return found
