"""How a test reaches the database the suite uses when it connects on its own or starts a
process: from Django's own connection, so the embedded server (a socket in the URL's query)
and a DATABASE_URL server are reached alike. Tests that use these are marked ``own_connection``
and run a second time on the embedded server in CI (.ci/run)."""

from __future__ import annotations

import os
from typing import Any

import psycopg
from django.db import connection

from cdp_site.dburl import connect_kwargs, database_url


def suite_database_url() -> str:
    """The DATABASE_URL of the test database this worker uses."""
    return database_url(connection.settings_dict)


def connect(**kwargs: Any) -> psycopg.Connection[Any]:
    """A connection of its own to the test database (the caller closes it)."""
    return psycopg.connect(**connect_kwargs(connection.settings_dict), **kwargs)


def subprocess_env(**extra: str) -> dict[str, str]:
    """The environment for a ``manage.py`` process that must use the test database."""
    return {**os.environ, "DATABASE_URL": suite_database_url(),
            "DJANGO_SETTINGS_MODULE": "cdp_site.settings", **extra}
