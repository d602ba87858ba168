"""A connection the database server ended is replaced before use (#18 finding 14): after
``pg_terminate_backend`` on this process's connection, the next collection, decision and
identity work succeed, where the paths that take psycopg's connection under Django's used to
fail their first statement (500s after a database restart)."""

from __future__ import annotations

import time
from typing import Any

import psycopg
import pytest
import requests
from django.db import connection

from cdp_site.db import is_gone, live_connection
from cdp_site.dburl import connect_kwargs
from profiles.models import RawEvent
from profiles.processing.identity import db_cursor
from tests.cdp_site.servers import gunicorn
from tests.conftest import make_account, make_write_key
from tests.experiences.decide_helpers import make_experience

pytestmark = pytest.mark.own_connection


def terminate(pids: str = "pid <> pg_backend_pid()") -> None:
    """Ends connections to the test database from another one, as a server restart would,
    and waits until the server has let them go."""
    where = f"datname = current_database() AND {pids}"
    with psycopg.connect(**connect_kwargs(connection.settings_dict), autocommit=True) as admin:
        admin.execute(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE {where}")  # noqa: S608
        deadline = time.monotonic() + 30
        while admin.execute(f"SELECT 1 FROM pg_stat_activity WHERE {where}").fetchone():  # noqa: S608
            assert time.monotonic() < deadline
            time.sleep(0.05)


@pytest.mark.slow
def test_a_kept_connection_the_server_ended_is_replaced_before_use(transactional_db: Any,
                                                                   ) -> None:
    """Collection and decisions through gunicorn's threads, which keep their connections
    between requests (CONN_MAX_AGE), after every connection of the server was ended."""
    account = make_account("Acme")
    key = make_write_key(account)[1]
    make_experience(account, "hero")
    headers = {"Authorization": f"Bearer {key}"}
    track = {"type": "track", "event": "Signed Up", "userId": "u1"}
    with gunicorn("--threads", "4", "--worker-class", "gthread") as base:
        def statuses(start: int) -> list[int]:
            out = []
            for n in range(start, start + 20):
                batch = {"batch": [{**track, "messageId": f"m{n}"}]}
                out.append(requests.post(f"{base}/v1/batch", json=batch, headers=headers,
                                         timeout=60).status_code)
                out.append(requests.post(f"{base}/api/v1/decide", json={"uid": f"v{n}"},
                                         headers=headers, timeout=60).status_code)
            return out

        assert set(statuses(0)) == {200}  # every thread holds a connection now
        connection.close()
        terminate()
        assert statuses(100) == [200] * 40
    assert RawEvent.objects.count() == 40


@pytest.mark.django_db(transaction=True)
def test_the_identity_cursor_after_the_server_ended_the_connection() -> None:
    connection.ensure_connection()
    try:
        terminate(f"pid = {connection.connection.info.backend_pid}")
        # the backend leaves pg_stat_activity a moment before its socket closes
        deadline = time.monotonic() + 30
        while not is_gone(connection.connection):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        with db_cursor() as cursor:
            assert cursor.execute("SELECT 1").fetchone() == (1,)
        assert not is_gone(live_connection())
    finally:  # never leave the suite's connection dead for the tests after this one
        connection.close()
