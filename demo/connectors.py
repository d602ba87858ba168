"""Use case 4 of the Lytics + Contentstack guide in the demo (first-party data activation):
a small CRM and an ad partner that the demo itself runs on loopback, and the two jobs that use
them. Both servers are part of the demo, clearly labelled as such, never a real system.

- The **demo CRM** answers ``GET /customers/<email>`` with a customer's ``loyalty_tier`` and
  ``preferred_activities`` (the same answer for the same email every time; about one email in
  five is unknown: 404). The ``CRM enrichment (demo)`` job calls it for each new email and puts
  the answers into the ``crm_users`` stream, which the use-case schema maps
  (``origin.email`` → email, ``response.loyalty_tier``, ``response.preferred_activities``), so
  the ``gold_members`` audience fills in as the answers are processed.
- The **demo ad partner** accepts ``POST /audiences`` (signed exports) and prints what it got.
  The ``Gold members to ad partner (demo)`` job exports ``gold_members`` to it, only profiles
  that granted the ``advertising`` purpose; one that withdraws it is removed.

Run both with ``manage.py demo_crm`` (127.0.0.1, ports 8765 and 8766); ``seed_demo`` creates
the authorizations, the jobs and the account's allowlist entry for loopback.
"""

from __future__ import annotations

import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote

from cdp_site.models import Account
from connectors import authorizations, jobs
from connectors.models import Authorization, ConnectorSettings, Job

CRM_PORT = 8765
PARTNER_PORT = 8766
TIERS = ["Bronze", "Silver", "Gold", "Platinum"]
ACTIVITIES = ["Parasailing", "Hiking", "Snorkeling", "Kayaking", "Golf", "Spa", "Cycling",
              "Skiing", "Surfing", "Yoga"]
CRM_AUTH = "Demo CRM (loopback, part of the demo)"
PARTNER_AUTH = "Demo ad partner (loopback, part of the demo)"
ENRICH_JOB = "CRM enrichment (demo)"
EXPORT_JOB = "Gold members to ad partner (demo)"


def crm_record(email: str) -> dict[str, Any] | None:
    """The demo CRM's customer record for an email (None: not a customer)."""
    digest = hashlib.sha256(email.strip().lower().encode()).digest()
    if "@" not in email or digest[0] % 5 == 0:
        return None
    tier = TIERS[[0, 0, 1, 1, 1, 2, 2, 3][digest[1] % 8]]
    picks = sorted({ACTIVITIES[b % len(ACTIVITIES)] for b in digest[2:2 + 1 + digest[3] % 3]})
    return {"email": email, "loyalty_tier": tier, "preferred_activities": picks}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    received: list[dict[str, Any]] = []

    def _send(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        prefix = "/customers/"
        record = crm_record(unquote(self.path[len(prefix):])) \
            if self.path.startswith(prefix) else None
        if record is None:
            self._send(404, {"error": "unknown customer"})
        else:
            self._send(200, record)

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        message = json.loads(body or b"{}")
        self.received.append(message)
        changes = message.get("changes", [])
        adds = sum(1 for c in changes if c.get("action") == "add")
        print(f"demo ad partner: {message.get('type')} {len(changes)} changes "
              f"({adds} add, {len(changes) - adds} remove)", flush=True)
        self._send(200, {"ok": True})

    def log_message(self, *args: Any) -> None:
        return None


def start_servers(host: str = "127.0.0.1", crm_port: int = CRM_PORT,
                  partner_port: int = PARTNER_PORT) -> list[ThreadingHTTPServer]:
    """The demo CRM and ad partner, serving in daemon threads (the caller shuts them down)."""
    servers = [ThreadingHTTPServer((host, port), _Handler) for port in (crm_port, partner_port)]
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    return servers


def seed_demo_connectors(account: Account, crm_port: int = CRM_PORT,
                         partner_port: int = PARTNER_PORT) -> None:
    """Idempotent: loopback allowed for the demo account, the two authorizations and jobs."""
    settings_row, _ = ConnectorSettings.objects.get_or_create(account=account)
    if "127.0.0.1" not in settings_row.outbound_allowlist:
        settings_row.outbound_allowlist = [*settings_row.outbound_allowlist, "127.0.0.1"]
        settings_row.save(update_fields=["outbound_allowlist"])
    found = {a.name: a for a in Authorization.objects.for_account(account)}
    for name, port in ((CRM_AUTH, crm_port), (PARTNER_AUTH, partner_port)):
        if name not in found:
            found[name] = authorizations.create_authorization(
                account, None, name=name, kind="http",
                base_url=f"http://127.0.0.1:{port}/").obj
    existing = set(Job.objects.for_account(account).values_list("name", flat=True))
    if ENRICH_JOB not in existing:
        jobs.create_job(account, None, name=ENRICH_JOB, kind="webhook_enrichment",
                        authorization_id=found[CRM_AUTH].pk, interval_seconds=60,
                        config={"identifier": "email", "url": "customers/{value}",
                                "stream": "crm_users", "rate_per_second": 10})
    if EXPORT_JOB not in existing:
        jobs.create_job(account, None, name=EXPORT_JOB, kind="audience_webhook",
                        authorization_id=found[PARTNER_AUTH].pk, interval_seconds=60,
                        config={"audience": "gold_members", "path": "audiences",
                                "identifiers": ["email"], "hash": {"email": "email"},
                                "fields": ["loyalty_tier"], "purposes": ["advertising"]})
