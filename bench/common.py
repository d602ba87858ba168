"""What every benchmark shares: the server it runs on, and its scratch databases.

The server is DATABASE_URL's, or the embedded one in var/pgdata when it is unset (as for
``make run``). URLs are changed through ``cdp_site.dburl``: the embedded server's URL names its
socket directory in the query, which cutting a URL at its last slash would break.
"""

from __future__ import annotations

import os
from pathlib import Path

from cdp_site.dburl import database_name, with_database

ROOT = Path(__file__).resolve().parent.parent


def server_url() -> str:
    """DATABASE_URL, or the embedded server's URL (started if it is not running)."""
    url = os.environ.get("DATABASE_URL")
    if url:
        return url
    from cdp_site.embedded_db import start_embedded_server

    return start_embedded_server(ROOT / "var" / "pgdata")


def fresh_database(url: str) -> str:
    """Drop and create the database ``url`` names; returns ``url``."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(with_database(url, "postgres"), autocommit=True) as conn:
        name = sql.Identifier(database_name(url))
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(name))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(name))
    return url


def scratch_database(base_url: str, name: str) -> str:
    """A new, empty database ``name`` on the server of ``base_url``; returns its URL."""
    return fresh_database(with_database(base_url, name))


def drop_database(url: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(with_database(url, "postgres"), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
            sql.Identifier(database_name(url))))
