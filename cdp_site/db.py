"""psycopg's own connection under Django's, replaced first when the server has ended it.

Hot paths (the collection INSERT, decisions, identity) run plain psycopg cursors on
``connection.connection`` after ``ensure_connection()``. That skips Django's health check
(``CONN_HEALTH_CHECKS``, done when Django makes a cursor), so after a database restart or a
``pg_terminate_backend`` the first statement of every kept connection failed (a 500). Reading
what the server sent (non-blocking, no round trip: a terminated backend has sent its FATAL
and closed the socket) tells a dead connection, which is closed and opened again, outside a
transaction; inside one nothing can be saved, and the error stands.
"""

from __future__ import annotations

from typing import Any

import psycopg
from django.db import connection as default_connection
from psycopg import pq


def is_gone(raw: psycopg.Connection[Any]) -> bool:
    """Whether the server has closed this connection (it cannot run another statement)."""
    if raw.closed or raw.broken:
        return True
    try:  # the first read may take only the server's farewell (FATAL); the next meets the EOF
        raw.pgconn.consume_input()
        raw.pgconn.consume_input()
    except psycopg.OperationalError:
        return True
    return raw.pgconn.status != pq.ConnStatus.OK


def live_connection(db: Any = default_connection) -> psycopg.Connection[Any]:
    """``db``'s psycopg connection, opened, or opened again if the server ended it."""
    raw = db.connection
    if raw is not None and not db.in_atomic_block and is_gone(raw):
        db.close()
    db.ensure_connection()
    connection: psycopg.Connection[Any] = db.connection
    return connection
