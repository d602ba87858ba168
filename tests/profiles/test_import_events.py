"""manage.py import_events: a file (plain, .gz, or stdin) through the bulk import."""

from __future__ import annotations

import gzip
import io
import json
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pytest
from django.core.management import CommandError, call_command

from profiles.models import FailedEvent, RawEvent

if TYPE_CHECKING:
    from pathlib import Path

    from cdp_site.models import Account


def run(*args: str, stdin: bytes | None = None, monkeypatch: Any = None) -> tuple[dict, str]:
    """Run the command; its summary (stdout, JSON) and its progress output (stderr)."""
    out, err = io.StringIO(), io.StringIO()
    if stdin is not None:
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin)))
    call_command("import_events", *args, stdout=out, stderr=err)
    return json.loads(out.getvalue()), err.getvalue()


def ndjson_file(path: Path, count: int) -> Path:
    path.write_text("".join(
        json.dumps({"event": "Viewed", "id": f"e{i}",
                    "when": f"2024-06-{1 + i % 28:02d}T08:00:00Z"}) + "\n"
        for i in range(count)))
    return path


def test_imports_an_ndjson_file_with_event_times_and_a_progress_line(
    account: Account, tmp_path: Path
) -> None:
    path = ndjson_file(tmp_path / "events.ndjson", 12_000)

    summary, progress = run(str(path), "--stream", "web", "--account", account.slug,
                            "--timestamp-field", "when", "--message-id-field", "id")

    assert summary == {"received": 12_000, "stored": 12_000, "duplicates": 0, "failed": 0,
                       "failures": []}
    stored = RawEvent.objects.for_account(account)
    assert stored.count() == 12_000
    row = stored.get(message_id="e30")
    assert row.event_at == datetime(2024, 6, 3, 8, tzinfo=UTC)
    assert (row.stream, row.source) == ("web", "import")
    assert "100.0%" in progress and "12,000 events" in progress


def test_reads_a_gzipped_csv_with_a_ragged_row(account: Account, tmp_path: Path) -> None:
    path = tmp_path / "users.csv.gz"
    path.write_bytes(gzip.compress(b"email,created\na@x.io,1700000000\nb@x.io\nc@x.io,1700000002\n"))

    summary, _ = run(str(path), "--stream", "crm_users", "--account", account.slug,
                     "--timestamp-field", "created", "--no-progress")

    assert (summary["stored"], summary["failed"]) == (2, 1)
    failure = FailedEvent.objects.for_account(account).get()
    assert (failure.line, failure.code, failure.source) == (3, "ragged_row", "import")
    assert sorted(RawEvent.objects.for_account(account).values_list("event_at", flat=True)) == [
        datetime.fromtimestamp(1700000000, UTC), datetime.fromtimestamp(1700000002, UTC)]


def test_reads_stdin_and_sniffs_the_format(account: Account, monkeypatch: Any) -> None:
    body = b'{"event": "a", "messageId": "s1"}\n{"event": "b", "messageId": "s1"}\n'

    summary, _ = run("-", "--stream", "web", "--account", account.slug, "--no-progress",
                     stdin=body, monkeypatch=monkeypatch)

    assert (summary["stored"], summary["duplicates"]) == (1, 1)


def test_a_second_run_of_the_same_file_stores_nothing_new(
    account: Account, tmp_path: Path
) -> None:
    path = ndjson_file(tmp_path / "events.jsonl", 50)
    args = (str(path), "--stream", "web", "--account", account.slug, "--message-id-field", "id",
            "--no-progress")
    run(*args)

    summary, _ = run(*args)

    assert (summary["stored"], summary["duplicates"]) == (0, 50)
    assert RawEvent.objects.for_account(account).count() == 50


def test_an_unknown_account_is_an_error(db: Any, tmp_path: Path) -> None:
    path = ndjson_file(tmp_path / "e.ndjson", 1)

    with pytest.raises(CommandError, match="No account"):
        run(str(path), "--stream", "web", "--account", "nobody")


def test_a_missing_file_is_an_error(account: Account, tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="Cannot read"):
        run(str(tmp_path / "missing.ndjson"), "--stream", "web", "--account", account.slug)


def test_unreadable_input_stores_nothing(account: Account, tmp_path: Path) -> None:
    path = tmp_path / "broken.ndjson.gz"
    path.write_bytes(gzip.compress(b'{"event": "a"}\n' * 1000)[:-30])

    with pytest.raises(CommandError, match="invalid_gzip"):
        run(str(path), "--stream", "web", "--account", account.slug, "--no-progress")
    assert not RawEvent.objects.for_account(account).exists()
