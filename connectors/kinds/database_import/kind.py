"""Database import.

The job's query runs against the authorization's PostgreSQL database, wrapped as
``SELECT * FROM (<query>) AS q WHERE q.<cursor column> > <last value> ORDER BY 1 LIMIT n``
in a read-only transaction with a statement timeout; each row becomes an event in the stream
(``{"type": "track", "event": "row", "row": {...}}``) with a message id derived from the job
and the row's cursor value, so rows read again after a crash count once. The DSN's host goes
through the outbound rules (an internal address needs the allowlist) and the connection goes
to the checked address. A DSN that cannot connect is transient; a query that fails, or that
does not return the cursor column, or returns it empty, fails the job."""

from __future__ import annotations

import json
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import psycopg
from django.utils import timezone
from psycopg import sql

from connectors import outbound
from connectors.errors import InvalidInput, PermanentError, TransientError
from connectors.models import Job
from connectors.registry import Kind, RunContext, StepResult, register
from profiles.collection.messages import IncomingEvent
from profiles.collection.store import accept

CONNECT_TIMEOUT = 10
STATEMENT_TIMEOUT_MS = 60_000


def _plain(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    return value


@register
class DatabaseImport(Kind):
    key = "database_import"
    label = "Database import (PostgreSQL)"
    description = ("Runs a query against a PostgreSQL database, incrementally by a cursor "
                   "column, and puts the rows into a stream as events.")
    authorization_kind = "postgres"
    example_config = {"query": "SELECT id, email, tier, updated_at FROM customers",
                      "cursor_column": "id", "stream": "crm_rows", "batch_size": 1000}
    config_schema = {
        "type": "object",
        "required": ["query", "cursor_column", "stream"],
        "additionalProperties": False,
        "properties": {
            "query": {"type": "string", "minLength": 1, "maxLength": 20000},
            "cursor_column": {"type": "string", "pattern": "^[A-Za-z_][A-Za-z0-9_]{0,62}$"},
            "stream": {"type": "string", "pattern": "^[a-z0-9_-]{1,100}$"},
            "batch_size": {"type": "integer", "minimum": 1, "maximum": 10000},
        },
    }

    def check(self, job: Job, config: dict[str, Any]) -> dict[str, Any]:
        if ";" in config["query"].strip().rstrip(";"):
            raise InvalidInput("config.query", "one statement only")
        config["query"] = config["query"].strip().rstrip(";")
        config.setdefault("batch_size", 1000)
        return config

    def _connect(self, ctx: RunContext) -> psycopg.Connection[Any]:
        try:
            params = psycopg.conninfo.conninfo_to_dict(ctx.secret["dsn"])
        except psycopg.ProgrammingError:
            raise PermanentError("the authorization's DSN cannot be read",
                                 code="invalid_dsn") from None
        host = str(params.get("host") or "")
        if not host or host.startswith("/"):
            raise PermanentError("the DSN must name a host (no local sockets)",
                                 code="invalid_dsn")
        port = int(params.get("port") or 5432)
        params["hostaddr"] = outbound.resolve(ctx.job.account_id, host, port)
        params["connect_timeout"] = CONNECT_TIMEOUT
        try:
            return psycopg.connect(psycopg.conninfo.make_conninfo("", **params))
        except psycopg.OperationalError:
            raise TransientError(f"cannot connect to the database on {host}:{port}",
                                 code="database_unreachable") from None

    def test_connection(self, ctx: RunContext) -> str:
        with self._connect(ctx) as conn:
            version = conn.execute("SHOW server_version").fetchone()
        return f"connected (PostgreSQL {version[0] if version else '?'})"

    def step(self, ctx: RunContext) -> StepResult:
        config = ctx.job.config
        column = config["cursor_column"]
        after = ctx.cursor.get("after")
        statement = sql.SQL("SELECT * FROM ({query}) AS q {where} ORDER BY q.{col} LIMIT {n}"
                            ).format(query=sql.SQL(config["query"]),  # the job's own query
                                     where=sql.SQL("WHERE q.{col} > %s").format(
                                         col=sql.Identifier(column)) if after is not None
                                     else sql.SQL(""),
                                     col=sql.Identifier(column),
                                     n=sql.Literal(int(config["batch_size"])))
        with self._connect(ctx) as conn:
            try:
                conn.read_only = True
                conn.execute(f"SET statement_timeout = {STATEMENT_TIMEOUT_MS}")
                cur = conn.execute(statement, [after] if after is not None else [])
                names = [d.name for d in cur.description or ()]
                rows = cur.fetchall()
            except psycopg.errors.QueryCanceled:
                raise TransientError("the query ran past its time bound",
                                     code="query_timeout") from None
            except psycopg.Error as exc:
                raise PermanentError(f"the query failed: {exc.diag.message_primary or exc}",
                                     code="query_failed") from None
        if column not in names:
            raise PermanentError(f"the query returns no column {column}",
                                 code="cursor_column_missing")
        if not rows:
            return StepResult(cursor=dict(ctx.cursor), done=True)
        at = names.index(column)
        events = []
        for row in rows:
            if row[at] is None:
                raise PermanentError(f"a row has no value in the cursor column {column}",
                                     code="cursor_value_missing")
            record = {name: _plain(value) for name, value in zip(names, row, strict=True)}
            key = json.dumps(_plain(row[at]), default=str)
            message_id = f"db-{ctx.job.pk}-{key}"[:200]
            events.append(IncomingEvent(
                message={"type": "track", "event": "row", "messageId": message_id,
                         "row": record},
                message_id=message_id, type="track", event="row", event_at=ctx.now()))
        account, stream = ctx.job.account, config["stream"]
        last = _plain(rows[-1][at])

        def commit() -> None:
            accept(account, stream, events, [], source="connector",
                   received_at=timezone.now())

        return StepResult(cursor={"after": last}, done=len(rows) < config["batch_size"],
                          added=len(events), commit=commit)
