"""Bulk import: NDJSON or CSV, optionally gzipped, streamed into the raw store with COPY.

``POST /collect/bulk/{stream}`` and ``manage.py import_events`` both call ``import_events``.
Memory stays flat whatever the size of the input: bytes are read in chunks, gunzipped in
bounded steps, split into lines whose kept length is capped, parsed in a reader thread, and
written in batches (``BATCH_ROWS`` rows or ``BATCH_BYTES`` of text) with COPY into a temporary
staging table; one statement per batch moves them into the raw store under collect's
message-id rule (``collect.dedupe_insert_sql``), so the same account and message id within 7
days is stored once however an event arrives.

One import is one transaction: a request that fails part-way (a broken gzip stream, a client
that goes away) stores nothing and can simply be sent again. A bad line or record is not such a
failure: it becomes a FailedEvent with its line number and the rest is imported.
"""

from __future__ import annotations

import csv
import json
import queue
import re
import threading
import zlib
from dataclasses import dataclass, field
from datetime import datetime
from itertools import chain
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from profiles.collection.intake import IntakeError
from profiles.collection.messages import (
    MAX_JSON_DEPTH,
    MAX_MESSAGE_BYTES,
    MESSAGE_ID_MAX,
    Failure,
    IncomingEvent,
    client_message_id,
    event_time,
    json_depth_exceeds,
    new_message_id,
)
from profiles.collection.plans import apply_plans, plans_for
from profiles.collection.store import (
    check_quota,
    dedupe_insert_sql,
    encode_message,
    ensure_stream,
    record_failures,
)
from profiles.models import STREAM_NAME_MAX, FailedEvent

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator
    from typing import Protocol

    from django.http import HttpRequest

    from cdp_site.models import Account

    class Readable(Protocol):
        def read(self, size: int = ..., /) -> bytes: ...


NDJSON = "ndjson"
CSV = "csv"
FORMATS = (NDJSON, CSV)

READ_BYTES = 256 * 1024  # one read from the request or file
INFLATE_BYTES = 256 * 1024  # most gunzip output per step
BATCH_ROWS = 5000  # rows per COPY and per move into the raw store
BATCH_BYTES = 4 * 1024 * 1024  # and at most about this much text per batch
FAILURE_SAMPLE = 20  # failures listed in the summary (all are kept as FailedEvents)
LINE_KEEP_BYTES = FailedEvent.BODY_LIMIT  # an over-long line keeps this much (for its body)
CSV_RECORD_CAP = 1024 * 1024  # a record spanning more than this (an open quote) is cut off
DEFAULT_MAX_BYTES = 2 * 1024**3
DEFAULT_MAX_DECOMPRESSED_BYTES = 8 * 1024**3

_CONTENT_TYPES = {
    "text/csv": CSV,
    "application/csv": CSV,
    "application/x-ndjson": NDJSON,
    "application/ndjson": NDJSON,
    "application/jsonl": NDJSON,
    "application/x-jsonlines": NDJSON,
    "application/json": NDJSON,
}
_STREAM_NAME = re.compile(rf"[A-Za-z0-9_-]{{1,{STREAM_NAME_MAX}}}")
_GZIP_MAGIC = b"\x1f\x8b"
_BOM = "\ufeff"
_NUMBER = re.compile(r"\s*-?\d+(?:\.\d+)?\s*")
_SUSPECT_ESCAPE = re.compile(r"\\u(?:0000|[dD][89a-fA-F])")
_BAD_CHARS = re.compile("[\x00\ud800-\udfff]")


def valid_stream_name(name: str) -> bool:
    return bool(_STREAM_NAME.fullmatch(name))


def max_body_bytes() -> int:
    """Largest body (as sent) the bulk endpoint takes: STRATA_BULK_MAX_BYTES, default 2 GB."""
    return int(getattr(settings, "STRATA_BULK_MAX_BYTES", DEFAULT_MAX_BYTES))


def max_decompressed_bytes() -> int:
    """Largest gunzipped input: STRATA_BULK_MAX_DECOMPRESSED_BYTES, default 8 GB."""
    return int(getattr(settings, "STRATA_BULK_MAX_DECOMPRESSED_BYTES",
                       DEFAULT_MAX_DECOMPRESSED_BYTES))


@dataclass
class BulkEvent(IncomingEvent):
    """An event of an import and the line it starts on (``encoded`` holds its JSON text: an
    NDJSON line as sent)."""

    line: int = 0


@dataclass
class BulkSummary:
    """What an import did; ``failures`` lists the first few (all are FailedEvents)."""

    received: int = 0
    stored: int = 0
    duplicates: int = 0
    failed: int = 0
    failures: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"received": self.received, "stored": self.stored,
                "duplicates": self.duplicates, "failed": self.failed,
                "failures": self.failures}


@dataclass(frozen=True)
class FieldNames:
    """Which fields of a record hold the event time and the message id. Unnamed, Segment's
    ``timestamp`` and ``messageId`` are used when present; a named field that is missing from a
    record is recorded as a warning on the event."""

    timestamp: str | None = None
    message_id: str | None = None


# Reading ---------------------------------------------------------------------------------------

def read_chunks(stream: Readable, limit: int | None = None,
                size: int = READ_BYTES) -> Iterator[bytes]:
    """The stream in chunks; past ``limit`` bytes the import is refused."""
    total = 0
    while True:
        chunk = stream.read(size)
        if not chunk:
            return
        total += len(chunk)
        if limit is not None and total > limit:
            raise IntakeError(413, "body_too_large",
                              f"The body is over {limit // 1024 // 1024} MB.")
        yield chunk


def request_chunks(request: HttpRequest, limit: int | None = None) -> Iterator[bytes]:
    """A request body as a stream of chunks, never held whole. A body with a Content-Length is
    read through Django's bounded stream; a chunked upload (no Content-Length) is read from
    ``wsgi.input`` when the server says it ends the stream (gunicorn does)."""
    limit = max_body_bytes() if limit is None else limit
    declared = request.META.get("CONTENT_LENGTH") or ""
    if declared.isdigit():
        if int(declared) > limit:
            raise IntakeError(413, "body_too_large",
                              f"The body is over {limit // 1024 // 1024} MB.")
        return read_chunks(request, limit)
    if request.META.get("wsgi.input_terminated"):
        return read_chunks(request.META["wsgi.input"], limit)
    return iter(())


def _peek(chunks: Iterator[bytes]) -> tuple[bytes, Iterator[bytes]]:
    """The first non-empty chunk, and all the chunks again."""
    for chunk in chunks:
        if chunk:
            return chunk, chain([chunk], chunks)
    return b"", iter(())


def gunzip_chunks(chunks: Iterable[bytes], cap: int) -> Iterator[bytes]:
    """Inflate a gzip stream (several members allowed) in bounded steps; past ``cap``
    decompressed bytes (a gzip bomb) the import is refused."""
    inflater: Any = None
    total = 0
    for chunk in chunks:
        data = chunk
        while True:
            if inflater is None:
                if not data:
                    break
                inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
            try:
                out = inflater.decompress(data, INFLATE_BYTES)
            except zlib.error:
                raise IntakeError(400, "invalid_gzip", "The body is not valid gzip.") from None
            total += len(out)
            if total > cap:
                raise IntakeError(413, "body_too_large",
                                  f"The decompressed body is over {cap // 1024 // 1024} MB.")
            if out:
                yield out
            if inflater.eof:  # a member ends; another may follow
                data = inflater.unused_data
                inflater = None
            else:
                data = inflater.unconsumed_tail
                if not data and len(out) < INFLATE_BYTES:
                    break  # this chunk is used up (a full step may leave output to drain)
    if inflater is not None:
        raise IntakeError(400, "invalid_gzip", "The gzip stream ends early.")


def decoded_chunks(chunks: Iterable[bytes], gzipped: bool | None = None,
                   cap: int | None = None) -> Iterator[bytes]:
    """The input as plain bytes: gunzipped when asked to, or when it starts like gzip."""
    first, chunks = _peek(iter(chunks))
    if gzipped is None:
        gzipped = first.startswith(_GZIP_MAGIC)
    if not gzipped:
        return chunks
    return gunzip_chunks(chunks, max_decompressed_bytes() if cap is None else cap)


def split_lines(chunks: Iterable[bytes], keep: int = LINE_KEEP_BYTES
                ) -> Iterator[tuple[int, bytes, bool]]:
    """(line number, line, over-long) for each line. An over-long line keeps only its first
    ``keep`` + 1 bytes (the rest is skipped as it streams by), so one huge line cannot fill
    memory."""
    number = 0
    head = b""  # the start of the current, unfinished line
    overflow = False  # the current line already passed ``keep``
    for chunk in chunks:
        parts = chunk.split(b"\n")
        parts[0] = head if overflow else head + parts[0]
        head = parts.pop()
        if parts:
            overflow = False
        for part in parts:
            number += 1
            if len(part) > keep:
                yield number, part[: keep + 1], True
            else:
                yield number, part, False
        if len(head) > keep:
            head = head[: keep + 1]
            overflow = True
    if head or overflow:
        yield number + 1, head, overflow


def sniff_format(chunks: Iterator[bytes]) -> tuple[str, Iterator[bytes]]:
    """NDJSON when the first thing in the input is ``{`` or ``[``, else CSV."""
    first, chunks = _peek(chunks)
    start = first.lstrip()
    if start.startswith(_BOM.encode()):
        start = start[3:].lstrip()
    return (NDJSON if start[:1] in (b"{", b"[") else CSV), chunks


def format_for(content_type: str, requested: str | None = None) -> str | None:
    """The format named by a request (``format`` parameter, then Content-Type), or None to
    sniff."""
    if requested:
        if requested not in FORMATS:
            raise IntakeError(400, "invalid_format",
                              f"format must be one of {', '.join(FORMATS)}.")
        return requested
    media = content_type.partition(";")[0].strip().lower()
    return _CONTENT_TYPES.get(media)


# Records ---------------------------------------------------------------------------------------

def _lookup(message: dict[str, Any], name: str) -> Any:
    """A field by name, or by a dotted path into nested objects (``properties.time``)."""
    if name in message:
        return message[name]
    value: Any = message
    for part in name.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def _as_text(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, default=str)


def _column(value: Any, limit: int) -> str:
    # PostgreSQL text cannot hold NUL (a CSV value may have one).
    text = _as_text(value)[:limit]
    return text.replace("\x00", "\ufffd") if "\x00" in text else text


def build_event(message: dict[str, Any], encoded: str, line: int, names: FieldNames,
                received_at: datetime, keep_message: bool = True,
                warnings: list[dict[str, Any]] | None = None) -> BulkEvent | Failure:
    """One record as an event: the columns pulled out of it, its message id (collect's rule:
    an over-long id becomes a digest, an object or list is refused) and its event time.
    Without tracking plans to check, the parsed message is not kept (``encoded`` is what is
    stored)."""
    warnings = [] if warnings is None else warnings
    message_id = client_message_id(_lookup(message, names.message_id or "messageId"), warnings)
    if message_id is None:
        return Failure("invalid_message_id", f"Line {line}: a message id is a string or a number.",
                       body=encoded, line=line)
    if not message_id:
        if names.message_id:
            warnings.append({"code": "missing_message_id",
                             "message": f"no {names.message_id!r} field; an id was generated"})
        message_id = new_message_id()
    stamp = _lookup(message, names.timestamp or "timestamp")
    if names.timestamp and stamp in (None, ""):
        warnings.append({"code": "missing_timestamp",
                         "message": f"no {names.timestamp!r} field; the received time was used"})
    if isinstance(stamp, str) and _NUMBER.fullmatch(stamp):
        stamp = float(stamp)  # epoch seconds or milliseconds, as CSV gives them
    event_at, _sent = event_time(received_at, stamp, None, warnings)
    return BulkEvent(
        message=message if keep_message else {},
        message_id=_column(message_id, MESSAGE_ID_MAX),
        type=_column(message.get("type"), 32), event=_column(message.get("event"), 200),
        user_id=_column(message.get("userId", message.get("user_id")), 300),
        anonymous_id=_column(message.get("anonymousId", message.get("anonymous_id")), 300),
        event_at=event_at, warnings=warnings, encoded=encoded, line=line,
    )


def _bounded_float(literal: str) -> float:
    """PostgreSQL's numeric cannot hold every JSON number Python parses (1e999999)."""
    exponent = literal.lower().partition("e")[2]
    if exponent and abs(int(exponent)) > 1000:
        raise ValueError(f"number {literal[:40]} is out of range")
    return float(literal)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


# JSON as PostgreSQL's jsonb takes it: no NaN/Infinity, no numbers beyond numeric's range.
_DECODER = json.JSONDecoder(parse_constant=_reject_constant, parse_float=_bounded_float)


def _has_bad_chars(value: Any) -> bool:
    """NUL and unpaired surrogates: valid to Python's json, refused by PostgreSQL."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if _BAD_CHARS.search(item):
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def parse_ndjson_line(line: int, raw: bytes, too_long: bool, names: FieldNames,
                      received_at: datetime, keep_message: bool = True
                      ) -> BulkEvent | Failure | None:
    """One NDJSON line as an event, a failure, or None for a blank line."""
    if too_long or len(raw) > MAX_MESSAGE_BYTES:
        return Failure("message_too_large",
                       f"Line {line} is over {MAX_MESSAGE_BYTES // 1024} KB.", body=raw, line=line)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return Failure("invalid_encoding", f"Line {line} is not UTF-8 (byte {exc.start}).",
                       body=raw, line=line)
    if line == 1:
        text = text.lstrip(_BOM)
    text = text.strip()
    if not text:
        return None
    try:
        message = _DECODER.decode(text)
    except RecursionError:
        return Failure("too_deep", f"Line {line} nests deeper than {MAX_JSON_DEPTH} levels.",
                       body=text, line=line)
    except json.JSONDecodeError as exc:
        return Failure("invalid_json", f"Line {line} is not valid JSON: {exc.msg} (column "
                       f"{exc.colno}).", body=text, line=line)
    except ValueError as exc:
        return Failure("invalid_json", f"Line {line} is not valid JSON: {exc}.",
                       body=text, line=line)
    if not isinstance(message, dict):
        return Failure("not_an_object",
                       f"Line {line} is a JSON {type(message).__name__}, not an object.",
                       body=text, line=line)
    if (text.count("{") + text.count("[") > MAX_JSON_DEPTH
            and json_depth_exceeds(message)):
        return Failure("too_deep", f"Line {line} nests deeper than {MAX_JSON_DEPTH} levels.",
                       body=text, line=line)
    warnings: list[dict[str, Any]] = []
    if "\\u" in text and _SUSPECT_ESCAPE.search(text) and _has_bad_chars(message):
        # Rare: what jsonb refuses (NUL, lone surrogates) becomes U+FFFD with a warning, by
        # collect's rule, and the line is stored re-encoded instead of as sent.
        encoded, problem = encode_message(message, warnings)
        if encoded is None:
            return Failure(problem, f"Line {line} cannot be stored ({problem}).",
                           body=raw, line=line)
        text, message = encoded, json.loads(encoded)
    return build_event(message, text, line, names, received_at, keep_message, warnings)


def ndjson_records(lines: Iterable[tuple[int, bytes, bool]], names: FieldNames,
                   received_at: datetime, keep_message: bool = True
                   ) -> Iterator[BulkEvent | Failure]:
    for line, raw, too_long in lines:
        item = parse_ndjson_line(line, raw, too_long, names, received_at, keep_message)
        if item is not None:
            yield item


class _RecordTooLong(Exception):
    pass


class _CsvLines:
    """Feeds csv.reader physical lines, keeping the raw text of the record being read. A line
    that is over-long or not UTF-8 becomes a failure and reaches csv as a blank."""

    def __init__(self, lines: Iterator[tuple[int, bytes, bool]]) -> None:
        self.lines = lines
        self.bad: list[Failure] = []
        self.start = 0  # line number where the current record began
        self.size = 0  # bytes of the current record
        self.parts: list[str] = []
        self.kept = 0

    def __iter__(self) -> _CsvLines:
        return self

    def __next__(self) -> str:
        line, raw, too_long = next(self.lines)
        if not self.start:
            self.start = line
        text = ""
        if too_long:
            self.bad.append(Failure("message_too_large", f"Line {line} is over "
                                    f"{MAX_MESSAGE_BYTES // 1024} KB.", body=raw, line=line))
        else:
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                self.bad.append(Failure("invalid_encoding",
                                        f"Line {line} is not UTF-8 (byte {exc.start}).",
                                        body=raw, line=line))
            else:
                if line == 1:
                    text = text.lstrip(_BOM)
        self.size += len(raw) + 1
        if self.kept <= LINE_KEEP_BYTES:
            self.parts.append(text + "\n")
            self.kept += len(text) + 1
        if self.size > CSV_RECORD_CAP:
            raise _RecordTooLong
        return text + "\n"

    def finish(self) -> tuple[int, str, int]:
        """The record just read: its first line, raw text and size; then start the next."""
        record = (self.start, "".join(self.parts), self.size)
        self.start = self.size = self.kept = 0
        self.parts = []
        return record


def csv_records(lines: Iterator[tuple[int, bytes, bool]], names: FieldNames,
                received_at: datetime, keep_message: bool = True
                ) -> Iterator[BulkEvent | Failure]:
    """CSV with a header row; each later record becomes an event whose message maps the
    header's names to the record's values (as strings). A record with more or fewer values than
    the header is a failure (``ragged_row``) with the line it starts on."""
    feeder = _CsvLines(lines)
    reader = csv.reader(feeder)
    header: list[str] | None = None
    while True:
        try:
            row = next(reader)
        except StopIteration:
            yield from feeder.bad
            return
        except _RecordTooLong:
            start, text, _size = feeder.finish()
            yield from _take(feeder.bad)
            yield Failure("message_too_large", f"The record starting on line {start} spans "
                          f"over {CSV_RECORD_CAP // 1024} KB (a quote left open?).",
                          body=text, line=start)
            continue
        except csv.Error as exc:
            start, text, _size = feeder.finish()
            yield from _take(feeder.bad)
            yield Failure("invalid_csv", f"Line {start}: {exc}", body=text, line=start)
            continue
        start, text, _size = feeder.finish()
        yield from _take(feeder.bad)
        if not row or (len(row) == 1 and not row[0].strip()):
            continue
        if header is None:
            header = _check_header(row)
            continue
        if len(row) != len(header):
            yield Failure("ragged_row", f"Line {start} has {_values(len(row))}; the header "
                          f"has {len(header)}.", body=text, line=start)
            continue
        message = dict(zip(header, row, strict=True))
        warnings: list[dict[str, Any]] = []
        encoded, problem = encode_message(message, warnings)  # checks size; NUL becomes U+FFFD
        if encoded is None:
            yield Failure(problem, f"The record on line {start} is over "
                          f"{MAX_MESSAGE_BYTES // 1024} KB.", body=text, line=start)
            continue
        yield build_event(message, encoded, start, names, received_at, keep_message, warnings)


def _values(count: int) -> str:
    return f"{count} value" if count == 1 else f"{count} values"


def _take(failures: list[Failure]) -> list[Failure]:
    taken = failures[:]
    failures.clear()
    return taken


def _check_header(row: list[str]) -> list[str]:
    header = [name.strip() for name in row]
    if any(not name for name in header):
        raise IntakeError(400, "invalid_csv", "The CSV header has an empty column name.")
    repeated = sorted({name for name in header if header.count(name) > 1})
    if repeated:
        raise IntakeError(400, "invalid_csv",
                          f"The CSV header repeats column names: {', '.join(repeated)}.")
    return header


# Overlap ---------------------------------------------------------------------------------------

PREFETCH_BATCHES = 1  # parsed batches waiting for the writer (one more is being parsed)


@dataclass
class _Raised:
    error: BaseException


_END = object()


def _size(item: BulkEvent | Failure) -> int:
    if isinstance(item, Failure):
        return len(item.body) + len(item.reason)
    return len(item.encoded or "")


def batched(items: Iterable[BulkEvent | Failure], rows: int = BATCH_ROWS,
            max_bytes: int = BATCH_BYTES) -> Iterator[list[BulkEvent | Failure]]:
    """Batches of at most ``rows`` items and about ``max_bytes`` of text, so a file of 32 KB
    lines holds no more in memory than one of short lines."""
    batch: list[BulkEvent | Failure] = []
    size = 0
    for item in items:
        batch.append(item)
        size += _size(item)
        if len(batch) >= rows or size >= max_bytes:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


def in_background(items: Iterator[Any], depth: int = PREFETCH_BATCHES) -> Iterator[Any]:
    """Run an iterator in a thread and hand its items over through a bounded queue, so reading
    and parsing the next batch overlaps with PostgreSQL storing the last one (only the
    caller's thread touches the database). Its exceptions are raised here; when the caller
    stops early, the thread stops at its next hand-over."""
    handover: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                handover.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def run() -> None:
        try:
            for item in items:
                if not put(item):
                    return
        except BaseException as exc:  # handed to the caller, who raises it
            put(_Raised(exc))
            return
        put(_END)

    thread = threading.Thread(target=run, name="bulk-parse", daemon=True)
    thread.start()
    try:
        while True:
            item = handover.get()
            if item is _END:
                return
            if isinstance(item, _Raised):
                raise item.error
            yield item
    finally:
        stop.set()


# Writing ---------------------------------------------------------------------------------------

STAGING = "strata_bulk_staging"
_STAGING_DDL = f"""
CREATE TEMP TABLE {STAGING} (
    n bigint NOT NULL, m text NOT NULL, t text NOT NULL, e text NOT NULL, u text NOT NULL,
    a text NOT NULL, sa timestamptz, ea timestamptz NOT NULL, j text NOT NULL, w text
) ON COMMIT DROP
"""
_COPY = f"COPY {STAGING} (n, m, t, e, u, a, ea, j, w) FROM STDIN"
# The staging rows of a batch have distinct message ids (``_first_of_each_id``), so no
# DISTINCT ON sort is needed here; ids in the raw store follow the input's order (n).
_MOVE = dedupe_insert_sql(
    f"SELECT n, m, t, e, u, a, sa, ea, j, w FROM {STAGING}", order_by="i.n"  # noqa: S608
)


@dataclass
class _Target:
    account: Account
    stream: str
    source: str
    key_prefix: str
    remote_addr: str | None
    received_at: datetime
    check_plans: bool


def write_batch(cursor: Any, target: _Target, batch: list[BulkEvent | Failure],
                summary: BulkSummary) -> None:
    """One batch: tracking plans, COPY into the staging table, the move into the raw store
    (duplicates skipped), and the failed events; ``summary`` is brought up to date."""
    events = [item for item in batch if isinstance(item, BulkEvent)]
    failures = [item for item in batch if isinstance(item, Failure)]
    summary.received += len(batch)
    if target.check_plans and events:
        kept, blocked = apply_plans(target.account, target.stream, list(events))
        if blocked:
            kept_ids = {id(item) for item in kept}
            refused = [item for item in events if id(item) not in kept_ids]
            for item, failure in zip(refused, blocked, strict=True):
                failure.line = item.line
            failures = sorted([*failures, *blocked], key=lambda f: f.line or 0)
        events = kept
    if events:
        stored = _store(cursor, target, _first_of_each_id(events))
        summary.stored += stored
        summary.duplicates += len(events) - stored
    if failures:
        summary.failed += len(failures)
        room = FAILURE_SAMPLE - len(summary.failures)
        summary.failures.extend({"line": f.line, "code": f.code, "reason": f.reason}
                                for f in failures[:max(room, 0)])
        record_failures(failures, account=target.account, stream=target.stream,
                        source=target.source, received_at=target.received_at,
                        key_prefix=target.key_prefix, remote_addr=target.remote_addr)


def _first_of_each_id(events: list[BulkEvent]) -> list[BulkEvent]:
    """A message id repeated within a batch is stored once, as its first line."""
    seen: set[str] = set()
    first = []
    for item in events:
        if item.message_id not in seen:
            seen.add(item.message_id)
            first.append(item)
    return first


def _store(cursor: Any, target: _Target, events: list[BulkEvent]) -> int:
    with cursor.cursor.copy(_COPY) as copy:
        for item in events:
            copy.write_row((
                item.line, item.message_id, item.type[:32], item.event[:200],
                item.user_id[:300], item.anonymous_id[:300], item.event_at, item.encoded,
                json.dumps(item.warnings) if item.warnings else None,
            ))
    cursor.execute(_MOVE, {"account": target.account.pk, "stream": target.stream,
                           "received": target.received_at, "source": target.source,
                           "key": None})
    stored = cursor.rowcount
    cursor.execute(f"TRUNCATE {STAGING}")
    return stored


def import_events(
    account: Account,
    stream: str,
    chunks: Iterable[bytes],
    *,
    fmt: str | None = None,
    gzipped: bool | None = None,
    names: FieldNames | None = None,
    source: str = "bulk",
    key_prefix: str = "",
    remote_addr: str | None = None,
    received_at: datetime | None = None,
    on_batch: Callable[[BulkSummary], None] | None = None,
) -> BulkSummary:
    """Import NDJSON or CSV (``fmt``; sniffed when None), gzipped or not (sniffed when None),
    into a stream, in one transaction. The monthly quota is checked first, as on every path,
    and the stream's tracking plans (those enabled when the import starts) apply to every
    event. Raises QuotaExceeded, or IntakeError for input that cannot be read as a whole
    (nothing is stored then)."""
    received_at = received_at or timezone.now()
    names = names or FieldNames()
    check_quota(account, received_at)
    ensure_stream(account, stream)
    target = _Target(account, stream, source, key_prefix, remote_addr, received_at,
                     check_plans=bool(plans_for(account, stream)))
    data = decoded_chunks(iter(chunks), gzipped)
    if fmt is None:
        fmt, data = sniff_format(data)
    lines = split_lines(data)
    parse = ndjson_records if fmt == NDJSON else csv_records
    records = parse(lines, names, received_at, keep_message=target.check_plans)
    summary = BulkSummary()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS pg_temp.{STAGING}")
        cursor.execute(_STAGING_DDL)
        for batch in in_background(batched(records)):
            write_batch(cursor, target, batch, summary)
            if on_batch is not None:
                on_batch(summary)
        cursor.execute(f"DROP TABLE IF EXISTS pg_temp.{STAGING}")
    return summary
