"""Database import against a second database on the test PostgreSQL: rows into a stream,
incrementally by the cursor column, counted once when read again; a DSN that cannot connect,
a query that fails, and a query without the cursor column."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg import sql

from cdp_site.dburl import connect_kwargs
from connectors import authorizations
from connectors.jobs import create_job
from connectors.models import Job
from connectors.runner import run_job
from profiles.models import RawEvent
from tests.connectors.builders import allow_local

pytestmark = pytest.mark.django_db


@pytest.fixture
def source(django_db_blocker: Any) -> Iterator[str]:
    """A second database with a customers table; its DSN (TCP, host 127.0.0.1)."""
    from django.db import connection

    kwargs = connect_kwargs(connection.settings_dict)
    name = f"{kwargs['dbname']}_source"
    admin = {**kwargs, "dbname": "postgres"}
    with psycopg.connect(**admin, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
            sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    with psycopg.connect(**{**kwargs, "dbname": name}, autocommit=True) as conn:
        conn.execute("CREATE TABLE customers (id int PRIMARY KEY, email text, tier text)")
        conn.execute("INSERT INTO customers SELECT g, 'c' || g || '@example.com', 'Gold' "
                     "FROM generate_series(1, 5) g")
    host = kwargs.get("host") or "127.0.0.1"
    if str(host).startswith("/"):
        pytest.skip("the test server is reached by a socket; the import needs TCP")
    user = kwargs.get("user") or "postgres"
    password = kwargs.get("password") or ""
    yield (f"host={host} port={kwargs.get('port') or 5432} dbname={name} user={user}"
           + (f" password={password}" if password else ""))
    with psycopg.connect(**admin, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
            sql.Identifier(name)))


def _job(account: Any, dsn: str, **config: Any) -> Job:
    auth = authorizations.create_authorization(account, None, name=f"DB {dsn[-12:]}",
                                               kind="postgres", secret={"dsn": dsn}).obj
    return create_job(account, None, name="Import", kind="database_import",
                      authorization_id=auth.pk,
                      config={"query": "SELECT id, email, tier FROM customers",
                              "cursor_column": "id", "stream": "crm_rows", "batch_size": 2,
                              **config})


def rows(account: Any) -> list[dict[str, Any]]:
    return [r.message["row"] for r in RawEvent.objects.filter(
        account_id=account.pk, stream="crm_rows").order_by("id")]


def test_rows_are_imported_incrementally(account: Any, source: str) -> None:
    allow_local(account)
    job = _job(account, source)
    run = run_job(job.pk, sleep=lambda _s: None)
    assert run is not None and run.outcome == "synced" and run.added == 5
    assert [r["id"] for r in rows(account)] == [1, 2, 3, 4, 5]
    with psycopg.connect(source, autocommit=True) as conn:
        conn.execute("INSERT INTO customers VALUES (6, 'c6@example.com', 'Silver')")
    run = run_job(job.pk, sleep=lambda _s: None)
    assert run is not None and run.added == 1
    Job.objects.filter(pk=job.pk).update(cursor={})  # read everything again
    run_job(job.pk, sleep=lambda _s: None)
    assert [r["id"] for r in rows(account)] == [1, 2, 3, 4, 5, 6]  # counted once


def test_an_internal_database_needs_the_allowlist(account: Any, source: str) -> None:
    job = _job(account, source)
    run_job(job.pk, sleep=lambda _s: None)
    job.refresh_from_db()
    assert job.state == "failed" and "allowlist" in job.last_error


def test_a_dsn_that_cannot_connect_backs_off(account: Any) -> None:
    allow_local(account)
    job = _job(account, "host=127.0.0.1 port=1 dbname=x user=nobody password=hunter2")
    run_job(job.pk, sleep=lambda _s: None)
    job.refresh_from_db()
    assert job.state == "sleeping" and "cannot connect" in job.last_error
    assert "hunter2" not in job.last_error
    assert not job.log.filter(message__contains="hunter2").exists()


@pytest.mark.parametrize(("query", "message"), [
    ("SELECT id, email FROM no_such_table", "the query failed"),
    ("SELECT email FROM customers", "column q.id does not exist"),
])
def test_a_failing_or_wrong_query_fails_the_job(account: Any, source: str, query: str,
                                                message: str) -> None:
    allow_local(account)
    job = _job(account, source, query=query)
    run_job(job.pk, sleep=lambda _s: None)
    job.refresh_from_db()
    assert job.state == "failed" and message in job.last_error
