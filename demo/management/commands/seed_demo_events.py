"""A week of realistic events for the demo account (demo.traffic), so the stream explorer has
something to show.

Idempotent: nothing is sent when the demo streams already hold events (and the schema is
published once; when it is published for events already there, their profiles are rebuilt).
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from cdp_site.models import Account
from demo import traffic
from profiles.processing.rebuild import start_rebuild


class Command(BaseCommand):
    help = ("Send a few days of realistic demo events (website and CRM) into the demo account "
            "through the collection core, then aggregate them. Skipped when they exist.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--account", default="demo", help="slug of the account (demo)")
        parser.add_argument("--days", type=int, default=7)
        parser.add_argument("--sessions-per-slot", type=float, default=4.0,
                            help="website sessions per 10 minutes at the daily peak")
        parser.add_argument("--seed", type=int, default=20261123)

    def handle(self, *args: Any, account: str, days: int, sessions_per_slot: float, seed: int,
               **options: Any) -> None:
        target = Account.objects.filter(slug=account).first()
        if target is None:
            raise CommandError(f"No account {account!r}: run `manage.py seed_demo` first.")
        published = traffic.publish_schema(target)
        if published is not None:
            self.stdout.write(f"Published the Lytics use-case schema (version "
                              f"{published.number}) in {target.name}.")
        if traffic.has_demo_events(target):
            if published is not None:  # events processed before there was a schema
                start_rebuild(target)
                self.stdout.write(f"Rebuilding {target.name}'s profiles with the new schema.")
            self.stdout.write(f"Demo events already in {target.name}; nothing sent.")
            return
        sent = traffic.send_traffic(target, days=days, sessions_per_slot=sessions_per_slot,
                                    seed=seed)
        if sent.over_quota:
            self.stderr.write(f"{target.name} is over its monthly quota; stopped sending.")
        self.stdout.write(self.style.SUCCESS(
            f"Sent {sent.stored:,} demo events to {target.name} ({traffic.WEB}, "
            f"{traffic.CRM}); {sent.failed:,} refused as failed events; aggregated "
            f"{sent.aggregated:,}."
        ))
