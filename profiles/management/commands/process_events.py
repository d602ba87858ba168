"""Process raw events into profiles: route, map, identify, merge (profiles.processing.pipeline)."""

from __future__ import annotations

import gc
import logging
import math
import signal
import time
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.db import close_old_connections

from cdp_site.health import PROCESSOR_HEARTBEAT, beat
from profiles.processing.pipeline import DEFAULT_BATCH, STEP_SECONDS, process_pending
from profiles.processing.wakeup import RECENT, RECENT_POLL, Waker

log = logging.getLogger(__name__)
BEAT_EVERY = 5.0  # seconds between the processor's heartbeats (/health/ shows their age)


class Command(BaseCommand):
    help = ("Claim batches of unprocessed raw events and apply them to profiles. Any number "
            "of these may run at once.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--loop", action="store_true",
                            help="keep running; when idle, wait for new events (woken by "
                                 "PostgreSQL NOTIFY), at most --interval seconds")
        parser.add_argument("--batch", type=int, default=DEFAULT_BATCH,
                            help=f"events per batch (default {DEFAULT_BATCH})")
        parser.add_argument("--interval", type=float, default=0.5,
                            help="seconds between looks for events when idle and no "
                                 "notification comes (the fallback poll), and before a retry")
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
        waker = Waker()
        listening = waker.listen()  # before the first look, so that no event is missed
        self.stdout.write(f"Processing events in batches of {batch} "
                          f"({'woken by new events, ' if listening else ''}"
                          f"polling every {interval:g} s when idle; Ctrl-C stops)")
        self.stdout.flush()

        last_beat = 0.0

        def work() -> int | None:
            nonlocal last_beat
            close_old_connections()
            try:
                if time.monotonic() - last_beat >= BEAT_EVERY:
                    beat(PROCESSOR_HEARTBEAT)
                    last_beat = time.monotonic()
                # bounded, so that connections are recycled and a stop is noticed
                return process_pending(limit=batch, account_id=account, max_seconds=10.0,
                                       should_stop=lambda: stopping)
            except Exception:  # a worker keeps going: the failed batch is back in the queue
                log.exception("processing failed; retrying in %s s", interval)
                return None

        last_work = -math.inf
        try:
            while not stopping:
                done = work()
                if done:
                    log.info("processed %d events", done)
                    last_work = time.monotonic()
                    continue
                if done is None:
                    time.sleep(interval)
                    continue
                if time.monotonic() - last_work < RECENT:
                    # events came a moment ago: more are likely, so look again shortly rather
                    # than have every statement of a steady trickle send a NOTIFY
                    time.sleep(min(RECENT_POLL, interval))
                    continue
                # idle: take the idle lock (statements queueing events notify from then on),
                # look once more (an event queued just before is visible now), then wait
                waker.idle()
                done = work()
                if done:
                    last_work = time.monotonic()
                elif not stopping:
                    waker.wait(interval, should_stop=lambda: stopping)
                waker.awake()
        finally:
            waker.close()
