"""gunicorn's access log without personal data or secrets (``manage.py serve``'s
``--logger-class``).

- The tag's ``GET /c/{aid}?…&email=…`` and every other collection or decision request carry
  identifiers and event properties in the query string: on those paths the log keeps the path
  and drops the query (``?…``).
- A write key sent as the Basic-auth user name is cut to its visible prefix, as failed events
  keep it (``cdp_site.write_keys.key_prefix``); headers that carry secrets are never logged
  whole, whatever the log format names.

Loaded by gunicorn's master before Django's apps: it imports nothing that needs them.
"""

from __future__ import annotations

from typing import Any

from gunicorn.glogging import Logger

from cdp_site.write_keys import key_prefix

# The collection paths (profiles.collection.middleware.PREFIXES) and the decision paths
# (experiences.decisions: decide, OFREP, Personalize); tests/cdp_site/test_access_log.py
# checks this list still covers both.
PRIVATE_QUERY_PREFIXES = ("/v1/", "/beacon/", "/sourceConfig", "/c/", "/cid/", "/collect/",
                          "/api/v1/decide", "/ofrep/", "/personalize/")
HIDDEN = "…"
# Atoms (request headers ``{name}i``, environ ``{name}e``) that may carry a secret.
_SECRET_ATOMS = ("{authorization}i", "{x-api-key}i", "{cookie}i", "{http_authorization}e",
                 "{http_x_api_key}e", "{http_cookie}e")


def cut_user(user: str) -> str:
    return "-" if user in ("", "-") else key_prefix(user) + HIDDEN


class AccessLogger(Logger):
    def atoms(self, resp: Any, req: Any, environ: dict[str, Any], request_time: Any,
              ) -> dict[str, Any]:
        atoms: dict[str, Any] = super().atoms(resp, req, environ, request_time)
        atoms["u"] = cut_user(str(atoms.get("u") or ""))
        for name in _SECRET_ATOMS:
            if name in atoms:
                atoms[name] = HIDDEN
        path = environ.get("PATH_INFO") or ""
        if environ.get("QUERY_STRING") and path.startswith(PRIVATE_QUERY_PREFIXES):
            raw_path = str(environ.get("RAW_URI") or path).split("?", 1)[0]
            atoms["r"] = (f"{environ.get('REQUEST_METHOD')} {raw_path}?{HIDDEN} "
                          f"{environ.get('SERVER_PROTOCOL')}")
            atoms["q"] = HIDDEN
            atoms["f"] = str(atoms.get("f") or "-").split("?", 1)[0]  # the page may carry some
            for name in ("{query_string}e", "{raw_uri}e", "{http_referer}e"):
                if name in atoms:
                    atoms[name] = HIDDEN
        return atoms
