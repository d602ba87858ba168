"""Compute audiences now, in this process (the API computes them in the background)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from audiences import membership
from cdp_site.models import Account


class Command(BaseCommand):
    help = ("Compute audiences now: every audience of an account (or the given slugs, with "
            "the audiences that include them), or with --time-relative what the 15-minute "
            "schedule does; --sizes records a size point per audience.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--account", help="account slug (default: every account)")
        parser.add_argument("slugs", nargs="*", help="audience slugs (default: all)")
        parser.add_argument("--time-relative", action="store_true",
                            help="only time-relative audiences and those including them")
        parser.add_argument("--sizes", action="store_true", help="record a size point too")

    def handle(self, *args: Any, **options: Any) -> None:
        accounts = Account.objects.order_by("slug")
        if options["account"]:
            accounts = accounts.filter(slug=options["account"])
            if not accounts.exists():
                raise CommandError(f"no account {options['account']!r}")
        elif options["slugs"]:
            raise CommandError("give --account with audience slugs")
        for account in accounts:
            if options["time_relative"]:
                results = membership.recompute_time_relative(account_id=account.pk)
            else:
                try:
                    results = membership.compute_account(
                        account.pk, slugs=options["slugs"] or None)
                except Exception as exc:
                    raise CommandError(f"{account.slug}: {exc}") from exc
            for r in results:
                self.stdout.write(f"{account.slug}/{r.slug}: {r.size} members "
                                  f"(+{r.entries} -{r.exits}) in {r.seconds:.2f} s")
            if options["sizes"]:
                membership.record_sizes(account_id=account.pk)
