"""Process raw events into profiles: route, map, identify, merge (profiles.processing.pipeline)."""

from __future__ import annotations

import gc
import logging
import signal
import time
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.db import close_old_connections

from cdp_site.health import PROCESSOR_HEARTBEAT, beat
from profiles.processing.pipeline import DEFAULT_BATCH, STEP_SECONDS, process_pending

log = logging.getLogger(__name__)
BEAT_EVERY = 5.0  # seconds between the processor's heartbeats (/health/ shows their age)


class Command(BaseCommand):
    help = ("Claim batches of unprocessed raw events and apply them to profiles. Any number "
            "of these may run at once.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--loop", action="store_true",
                            help="keep running, waiting --interval seconds when idle")
        parser.add_argument("--batch", type=int, default=DEFAULT_BATCH,
                            help=f"events per batch (default {DEFAULT_BATCH})")
        parser.add_argument("--interval", type=float, default=0.5)
        parser.add_argument("--account", type=int, default=None,
                            help="only this account's events (by id)")
        parser.add_argument("--timings", action="store_true",
                            help="on exit, print the wall seconds spent per pipeline step "
                                 "(lines 'step <name> <seconds>'; bench/process.py reads them)")

    def handle(self, *args: Any, loop: bool, batch: int, interval: float, account: int | None,
               timings: bool = False, **options: Any) -> None:
        try:
            self._run(loop=loop, batch=batch, interval=interval, account=account)
        finally:
            if timings:
                for name, seconds in sorted(STEP_SECONDS.items()):
                    self.stdout.write(f"step {name.replace(' ', '_')} {seconds:.3f}")
                self.stdout.flush()

    def _run(self, *, loop: bool, batch: int, interval: float, account: int | None) -> None:
        # A batch allocates hundreds of thousands of short-lived objects (decoded messages,
        # field states), nearly none in cycles: with the default thresholds the collector ran
        # often enough, scanning Django's long-lived objects each time, to take ~15 % of the
        # worker's CPU. Long-lived objects are moved out of its way, and it runs less often.
        gc.freeze()
        gc.set_threshold(50_000, 50, 100)
        if not loop:
            started = time.monotonic()
            events = process_pending(limit=batch, account_id=account)
            self.stdout.write(f"{events} events in {time.monotonic() - started:.1f} s")
            return
        stopping = False

        def stop(*_: Any) -> None:
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        self.stdout.write(f"Processing events in batches of {batch} (Ctrl-C stops)")
        last_beat = 0.0
        while not stopping:
            close_old_connections()
            try:
                if time.monotonic() - last_beat >= BEAT_EVERY:
                    beat(PROCESSOR_HEARTBEAT)
                    last_beat = time.monotonic()
                # bounded, so that connections are recycled and a stop is noticed
                events = process_pending(limit=batch, account_id=account, max_seconds=10.0,
                                         should_stop=lambda: stopping)
            except Exception:  # a worker keeps going: the failed batch is back in the queue
                log.exception("processing failed; retrying in %s s", interval)
                events = 0
            if events:
                log.info("processed %d events", events)
            else:
                time.sleep(interval)
