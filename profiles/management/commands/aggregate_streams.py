"""Keep the stream explorer's counts, raw keys and usage up to date from the raw store."""

from __future__ import annotations

import logging
import os
import signal
import time
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.db import DatabaseError, close_old_connections

from profiles.explorer.aggregate import CHUNK_SIZE, aggregate_streams, shutdown_workers

log = logging.getLogger(__name__)


def default_workers() -> int:
    """Worker processes for --loop: none on small machines (with two cores the web server and
    PostgreSQL need the second one; bench/aggregate.py measured no gain), else half the
    cores, at most 4."""
    cores = os.cpu_count() or 1
    return min(4, cores // 2) if cores >= 4 else 0


class Command(BaseCommand):
    help = "Fold new raw events into hourly counts, raw keys and violation counts."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--loop", action="store_true",
                            help="keep running, catching up every --interval seconds")
        parser.add_argument("--interval", type=float, default=2.0)
        parser.add_argument("--chunk-size", type=int, default=CHUNK_SIZE)
        parser.add_argument("--workers", type=int, default=None,
                            help="summarising processes (default: 0 for one run, "
                                 "half the cores up to 4 with --loop on 4 cores or more)")

    def handle(self, *args: Any, loop: bool, interval: float, chunk_size: int,
               workers: int | None, **options: Any) -> None:
        if workers is None:
            workers = default_workers() if loop else 0
        if not loop:
            once = aggregate_streams(chunk_size=chunk_size, workers=workers)
            self.stdout.write(f"{once.events} events and {once.failed_events} failed events "
                              f"in {once.seconds:.1f} s")
            return
        stopping = False

        def stop(*_: Any) -> None:
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        self.stdout.write(f"Aggregating streams every {interval:g} s (Ctrl-C stops)")
        try:
            while not stopping:
                close_old_connections()
                try:
                    # bounded, so a stop request is noticed within a few seconds
                    result = aggregate_streams(chunk_size=chunk_size, workers=workers,
                                               max_seconds=max(interval, 5.0), read_ahead=True)
                except DatabaseError:
                    log.exception("aggregation failed; retrying in %s s", interval)
                    result = None
                if result is None or result.idle:
                    time.sleep(interval)
                elif result.events:
                    log.info("aggregated %d events in %.2f s", result.events, result.seconds)
        finally:
            shutdown_workers()
