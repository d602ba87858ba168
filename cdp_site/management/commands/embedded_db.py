from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from cdp_site.embedded_db import stop_embedded_server


class Command(BaseCommand):
    help = "Show or stop the embedded PostgreSQL server in var/pgdata."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("action", choices=["status", "stop"])

    def handle(self, *args: Any, action: str, **options: Any) -> None:
        pgdata = settings.VAR_DIR / "pgdata"
        if action == "stop":
            stopped = stop_embedded_server(pgdata)
            self.stdout.write("stopped" if stopped else "not running")
        else:
            self.stdout.write(f"{pgdata}: {settings.DATABASE_URL}")
