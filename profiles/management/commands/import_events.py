"""`manage.py import_events FILE --stream S --account SLUG`: the bulk endpoint from a file."""

from __future__ import annotations

import json
import os
import sys
import time
from typing import TYPE_CHECKING, Any, TextIO

from django.core.management.base import BaseCommand, CommandError, CommandParser

from cdp_site.models import Account
from profiles.collection import bulk
from profiles.collection.intake import IntakeError
from profiles.collection.messages import QuotaExceeded

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

_SUFFIX_FORMATS = {".csv": bulk.CSV, ".ndjson": bulk.NDJSON, ".jsonl": bulk.NDJSON,
                   ".json": bulk.NDJSON}


def format_from_name(path: str) -> str | None:
    """The format a file name says (``events.csv.gz`` is CSV), or None to sniff."""
    name = path.lower().removesuffix(".gz")
    return next((fmt for suffix, fmt in _SUFFIX_FORMATS.items() if name.endswith(suffix)), None)


class Progress:
    """A progress bar on stderr: bytes read (of the file's size when known), events stored,
    failures and the rate. Redrawn in place on a terminal, a line every 10 s otherwise."""

    def __init__(self, out: TextIO, total: int | None, enabled: bool = True) -> None:
        self.out = out
        self.total = total or None
        self.enabled = enabled
        self.tty = out.isatty()
        self.read = 0
        self.summary = bulk.BulkSummary()
        self.started = time.monotonic()
        self.drawn = 0.0

    def track(self, chunks: Iterable[bytes]) -> Iterator[bytes]:
        for chunk in chunks:
            self.read += len(chunk)
            yield chunk

    def batch(self, summary: bulk.BulkSummary) -> None:
        self.summary = summary
        now = time.monotonic()
        if now - self.drawn >= (0.2 if self.tty else 10.0):
            self.drawn = now
            self.draw()

    def draw(self, end: str = "") -> None:
        if not self.enabled:
            return
        elapsed = max(time.monotonic() - self.started, 1e-6)
        done = self.summary.received
        mb = self.read / 1024 / 1024
        if self.total:
            share = min(self.read / self.total, 1.0)
            filled = int(share * 30)
            head = (f"[{'#' * filled}{'-' * (30 - filled)}] {share:6.1%} "
                    f"{mb:,.1f}/{self.total / 1024 / 1024:,.1f} MB")
        else:
            head = f"{mb:,.1f} MB"
        line = (f"{head}  {done:,} events ({self.summary.stored:,} stored, "
                f"{self.summary.failed:,} failed)  {done / elapsed:,.0f}/s")
        self.out.write(("\r" + line + end) if self.tty else line + "\n")
        self.out.flush()


class Command(BaseCommand):
    help = ("Import NDJSON or CSV events (optionally gzipped) into a stream, as POST "
            "/collect/bulk/{stream} does: streamed, written with COPY, duplicates stored once.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", help="the file to import (.gz read as gzip), or - for stdin")
        parser.add_argument("--stream", required=True, help="the stream the events go to")
        parser.add_argument("--account", required=True, help="the account's slug")
        parser.add_argument("--format", choices=bulk.FORMATS, default=None,
                            help="ndjson or csv (default: from the file name, else sniffed)")
        parser.add_argument("--timestamp-field", default=None,
                            help="the field holding the event time (ISO 8601 or epoch s/ms)")
        parser.add_argument("--message-id-field", default=None,
                            help="the field holding the message id (duplicates stored once)")
        parser.add_argument("--no-progress", action="store_true", help="no progress bar")

    def handle(self, *args: Any, **options: Any) -> None:
        account = Account.objects.filter(slug=options["account"]).first()
        if account is None:
            raise CommandError(f"No account with the slug {options['account']!r}.")
        stream = options["stream"]
        if not bulk.valid_stream_name(stream):
            raise CommandError(f"{stream!r} is not a stream name (letters, digits, - and _).")
        path = options["file"]
        fmt = options["format"] or (None if path == "-" else format_from_name(path))
        names = bulk.FieldNames(timestamp=options["timestamp_field"] or None,
                                message_id=options["message_id_field"] or None)
        try:
            source = sys.stdin.buffer if path == "-" else open(path, "rb")  # noqa: SIM115
        except OSError as exc:
            raise CommandError(f"Cannot read {path}: {exc.strerror}.") from None
        with source:
            size = None if path == "-" else os.fstat(source.fileno()).st_size
            # The stream under the OutputWrapper (which would end and style each write); the
            # stubs type the wrapper's unknown attributes as callables.
            progress = Progress(self.stderr._out, size,  # type: ignore[arg-type]
                                enabled=not options["no_progress"])
            try:
                summary = bulk.import_events(
                    account, stream, progress.track(bulk.read_chunks(source)), fmt=fmt,
                    names=names, source="import", on_batch=progress.batch,
                )
            except IntakeError as exc:
                raise CommandError(f"{exc.code}: {exc.message} Nothing was imported.") from None
            except QuotaExceeded as exc:
                raise CommandError(f"{exc} Nothing was imported.") from None
        progress.summary = summary
        progress.draw(end="\n")
        self.stdout.write(json.dumps(summary.as_dict(), indent=2))
