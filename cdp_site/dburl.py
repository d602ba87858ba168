"""Connection parameters of a Django database, for code that connects on its own.

A test that opens a second connection, a command that starts worker processes and a benchmark
that makes a scratch database must all reach the server Django uses. With the embedded server
that server is a Unix socket named in the URL's query (``postgresql://postgres:@/strata?host=
/path``): ``settings_dict["HOST"]`` is empty and the socket sits in ``OPTIONS``, so code that
reads only ``HOST`` and ``PORT`` reaches libpq's default socket, another server. Everything
that connects by hand goes through these functions instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlencode, urlsplit, urlunsplit


def connect_kwargs(settings_dict: Mapping[str, Any]) -> dict[str, Any]:
    """Keyword arguments for ``psycopg.connect`` that reach this Django database."""
    options = settings_dict.get("OPTIONS") or {}
    kwargs: dict[str, Any] = {"dbname": settings_dict["NAME"]}
    host = settings_dict.get("HOST") or options.get("host")
    port = settings_dict.get("PORT") or options.get("port")
    if host:
        kwargs["host"] = host
    if port:
        kwargs["port"] = int(port)
    if settings_dict.get("USER"):
        kwargs["user"] = settings_dict["USER"]
    if settings_dict.get("PASSWORD"):
        kwargs["password"] = settings_dict["PASSWORD"]
    return kwargs


def database_url(settings_dict: Mapping[str, Any]) -> str:
    """A DATABASE_URL naming this Django database, that ``dj_database_url`` parses back to it
    (a socket directory travels in the query, as the embedded server's own URL has it)."""
    kwargs = connect_kwargs(settings_dict)
    user = quote(kwargs.get("user", ""), safe="")
    password = kwargs.get("password")
    auth = f"{user}:{quote(password, safe='')}@" if password else (f"{user}@" if user else "")
    host = kwargs.get("host", "")
    query: dict[str, str] = {}
    if host.startswith("/"):  # a socket directory cannot sit in the netloc
        query["host"] = host
        if "port" in kwargs:
            query["port"] = str(kwargs["port"])
        netloc = auth
    else:
        netloc = auth + host + (f":{kwargs['port']}" if "port" in kwargs else "")
    return urlunsplit(("postgres", netloc, "/" + quote(kwargs["dbname"], safe=""),
                       urlencode(query), ""))


def with_database(url: str, name: str) -> str:
    """The same server's URL with another database name (the query, a socket directory for
    one, is kept: cutting the URL at its last slash would cut inside a socket path)."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + quote(name, safe=""), parts.query,
                       parts.fragment))


def database_name(url: str) -> str:
    """The database a URL names."""
    return urlsplit(url).path.lstrip("/")

