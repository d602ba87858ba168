"""Run the demo's CRM and ad partner on loopback (part of the demo, never a real system)."""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from demo.connectors import CRM_PORT, PARTNER_PORT, start_servers


class Command(BaseCommand):
    help = ("Serve the demo CRM (GET /customers/<email>) and the demo ad partner "
            "(POST /audiences) on 127.0.0.1, for use case 4 of the demo.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--crm-port", type=int, default=CRM_PORT)
        parser.add_argument("--partner-port", type=int, default=PARTNER_PORT)

    def handle(self, *args: Any, **options: Any) -> None:
        servers = start_servers(crm_port=options["crm_port"],
                                partner_port=options["partner_port"])
        self.stdout.write(f"Demo CRM on http://127.0.0.1:{options['crm_port']}/customers/, "
                          f"demo ad partner on http://127.0.0.1:{options['partner_port']}/"
                          "audiences (part of the demo). Ctrl-C stops them.")
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            for server in servers:
                server.shutdown()
