from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from demo.seed import seed_demo


class Command(BaseCommand):
    help = "Create (once) the demo accounts and admin user, and print how to sign in."

    def handle(self, *args: Any, **options: Any) -> None:
        creds = seed_demo()
        self.stdout.write(self.style.SUCCESS("Strata demo is ready:"))
        self.stdout.write(f"  URL:        {creds.url}")
        self.stdout.write(f"  user:       {creds.username}")
        self.stdout.write(f"  password:   {creds.password}")
        self.stdout.write(f"  write key:  {creds.write_key}")
        self.stdout.write(f"  account id: {creds.account_aid}")
