"""Re-encrypt every authorization under the newest of STRATA_CONNECTOR_KEYS."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from connectors.authorizations import rotate_all


class Command(BaseCommand):
    help = ("Re-encrypt every connector authorization under the first (newest) key of "
            "STRATA_CONNECTOR_KEYS; older keys can be removed afterwards.")

    def handle(self, *args: Any, **options: Any) -> None:
        count = rotate_all()
        self.stdout.write(f"Re-encrypted {count} authorizations under the newest key.")
