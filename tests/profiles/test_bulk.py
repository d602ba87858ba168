"""POST /collect/bulk/{stream}: NDJSON and CSV, gzip, failures by line, dedupe, tokens, memory."""

from __future__ import annotations

import gzip
import json
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import psutil
import pytest
import requests
from django.test import Client
from django.utils import timezone

from cdp_site import access
from cdp_site.models import AccessToken, Account
from profiles.collection import bulk
from profiles.collection.messages import IncomingEvent
from profiles.collection.store import store_events
from profiles.models import FailedEvent, MessageId, RawEvent, Stream, TrackingPlan
from tests.conftest import make_account, make_token, system_actor

NDJSON = "application/x-ndjson"


def post(secret: str | None, stream: str, body: bytes, content_type: str = NDJSON,
         query: str = "", **headers: str) -> Any:
    if secret is not None:
        headers["Authorization"] = f"Bearer {secret}"
    url = f"/collect/bulk/{stream}" + (f"?{query}" if query else "")
    return Client().post(url, data=body, content_type=content_type, headers=headers)


def ndjson(*messages: Any) -> bytes:
    return b"".join(json.dumps(m).encode() + b"\n" for m in messages)


def rows(account: Account) -> list[RawEvent]:
    return list(RawEvent.objects.for_account(account).order_by("id"))


def failures(account: Account) -> list[FailedEvent]:
    return list(FailedEvent.objects.for_account(account).order_by("line", "id"))


@pytest.fixture
def secret(account: Account) -> str:
    """A Data Manager's token: the role that holds schema.edit."""
    return make_token(account, ["data_manager"])[1]


def test_ndjson_import_takes_event_times_from_the_timestamp_field(
    account: Account, secret: str
) -> None:
    body = ndjson(
        {"event": "Order Completed", "userId": "u1", "at": "2024-03-05T10:20:30Z", "id": "a"},
        {"event": "Page", "anonymousId": "v9", "at": 1709634030000, "id": "b"},  # epoch ms
        {"event": "Page", "userId": "u2", "at": 1709634031, "id": "c"},  # epoch s
        {"event": "Page", "userId": "u3", "at": "2024-03-05T12:00:00+02:00", "id": "d"},
    )

    response = post(secret, "orders", body, query="timestamp_field=at&message_id_field=id")

    assert response.status_code == 200, response.content
    assert response.json() == {"received": 4, "stored": 4, "duplicates": 0, "failed": 0,
                               "failures": []}
    stored = rows(account)
    assert [r.message_id for r in stored] == ["a", "b", "c", "d"]  # ids follow the file
    assert [r.event_at for r in stored] == [
        datetime(2024, 3, 5, 10, 20, 30, tzinfo=UTC),
        datetime(2024, 3, 5, 10, 20, 30, tzinfo=UTC),
        datetime(2024, 3, 5, 10, 20, 31, tzinfo=UTC),
        datetime(2024, 3, 5, 10, 0, 0, tzinfo=UTC),
    ]
    first = stored[0]
    assert (first.stream, first.event, first.user_id, first.source) == (
        "orders", "Order Completed", "u1", "bulk")
    assert first.message == {"event": "Order Completed", "userId": "u1",
                             "at": "2024-03-05T10:20:30Z", "id": "a"}
    assert stored[1].anonymous_id == "v9"
    assert Stream.objects.for_account(account).filter(name="orders").exists()


def test_csv_import_takes_event_times_from_the_timestamp_field(
    account: Account, secret: str
) -> None:
    body = (
        b"email,signed_up,plan\r\n"
        b"ann@example.com,2023-11-14T22:13:20Z,pro\r\n"
        b"bob@example.com,1700000001,free\r\n"
        b'"carol@example.com",1700000002000,"team, annual"\r\n'
    )

    response = post(secret, "crm_users", body, "text/csv", query="timestamp_field=signed_up")

    assert response.status_code == 200, response.content
    assert response.json()["stored"] == 3
    stored = rows(account)
    assert [r.event_at for r in stored] == [
        datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC),
        datetime(2023, 11, 14, 22, 13, 21, tzinfo=UTC),
        datetime(2023, 11, 14, 22, 13, 22, tzinfo=UTC),
    ]
    assert stored[2].message == {"email": "carol@example.com", "signed_up": "1700000002000",
                                 "plan": "team, annual"}


def test_a_record_without_its_timestamp_keeps_the_received_time_with_a_warning(
    account: Account, secret: str
) -> None:
    before = timezone.now()
    body = ndjson({"event": "a", "at": "not a date"}, {"event": "b"})

    response = post(secret, "web", body, query="timestamp_field=at")

    assert response.json()["stored"] == 2
    first, second = rows(account)
    assert first.event_at >= before and second.event_at >= before
    assert first.warnings[0]["code"] == "invalid_timestamp"
    assert second.warnings[0]["code"] == "missing_timestamp"


def test_gzip_bodies_are_imported_with_or_without_content_encoding(
    account: Account, secret: str
) -> None:
    first = gzip.compress(ndjson(*({"event": "e", "messageId": f"g{i}"} for i in range(50))))
    second = gzip.compress(b"id,ts\nx1,1700000000\nx2,1700000001\n")

    declared = post(secret, "web", first, **{"Content-Encoding": "gzip"})
    sniffed = post(secret, "crm", second, "application/gzip", query="timestamp_field=ts")

    assert declared.json()["stored"] == 50
    assert sniffed.json()["stored"] == 2  # gzip and CSV both recognised from the bytes
    assert RawEvent.objects.for_account(account).filter(stream="crm").count() == 2


def test_format_is_sniffed_when_the_content_type_does_not_say(
    account: Account, secret: str
) -> None:
    assert post(secret, "web", ndjson({"event": "x"}), "application/octet-stream").json()[
        "stored"] == 1
    assert post(secret, "web", b"a,b\n1,2\n", "application/octet-stream").json()["stored"] == 1
    assert rows(account)[1].message == {"a": "1", "b": "2"}


def test_ragged_csv_row_goes_to_failed_events_with_its_line_and_the_rest_is_imported(
    account: Account, secret: str
) -> None:
    body = (
        b"id,name,city\n"
        b"1,Ann,Paris\n"
        b"2,Bob\n"  # line 3: too few values
        b'3,"Carol\nSmith",Oslo\n'  # lines 4-5: one record over two lines
        b"4,Dan,Rome,extra\n"  # line 6: too many values
        b"\n"
        b"5,Eve,Nice\n"
    )

    response = post(secret, "crm", body, "text/csv")

    summary = response.json()
    assert (summary["received"], summary["stored"], summary["failed"]) == (5, 3, 2)
    assert [(f["line"], f["code"]) for f in summary["failures"]] == [
        (3, "ragged_row"), (6, "ragged_row")]
    assert [r.message["id"] for r in rows(account)] == ["1", "3", "5"]
    assert rows(account)[1].message["name"] == "Carol\nSmith"
    kept = failures(account)
    assert [(f.line, f.code, f.body.strip(), f.source) for f in kept] == [
        (3, "ragged_row", "2,Bob", "bulk"), (6, "ragged_row", "4,Dan,Rome,extra", "bulk")]
    assert "has 2 values; the header has 3" in kept[0].reason


def test_bad_ndjson_lines_go_to_failed_events_with_their_line_numbers(
    account: Account, secret: str
) -> None:
    deep: Any = "x"
    for _ in range(40):
        deep = {"n": deep}
    body = b"\n".join([
        json.dumps({"event": "ok", "n": 1}).encode(),  # 1
        b'{"event": "broken"',  # 2: invalid JSON
        b"[1, 2, 3]",  # 3: not an object
        json.dumps({"event": "big", "pad": "x" * 40_000}).encode(),  # 4: over 32 KB
        json.dumps({"event": "deep", "d": deep}).encode(),  # 5: nested over 32 levels
        b"",  # 6: blank, skipped
        b'{"event": "nul", "v": "a\\u0000b"}',  # 7: kept, NUL replaced (collect's rule)
        b'{"event": "latin", "v": "caf\xe9"}',  # 8: not UTF-8
        b'{"event": "nan", "v": NaN}',  # 9: not JSON
        b'{"event": "huge", "v": 1e999999}',  # 10: out of PostgreSQL's range
        json.dumps({"event": "ok", "n": 2}).encode(),  # 11
    ])

    response = post(secret, "web", body)

    summary = response.json()
    assert (summary["received"], summary["stored"], summary["failed"]) == (10, 3, 7)
    assert [(f["line"], f["code"]) for f in summary["failures"]] == [
        (2, "invalid_json"), (3, "not_an_object"), (4, "message_too_large"), (5, "too_deep"),
        (8, "invalid_encoding"), (9, "invalid_json"), (10, "invalid_json"),
    ]
    assert [f.line for f in failures(account)] == [2, 3, 4, 5, 8, 9, 10]
    assert failures(account)[0].body == '{"event": "broken"'
    assert [r.event for r in rows(account)] == ["ok", "nul", "ok"]
    nul = rows(account)[1]
    assert nul.message["v"] == "a\ufffdb"
    assert nul.warnings[0]["code"] == "nul_character"


def test_a_line_of_megabytes_is_refused_alone_without_being_held_whole(
    account: Account, secret: str
) -> None:
    body = ndjson({"event": "a"}) + b'{"pad": "' + b"y" * 3_000_000 + b'"}\n' + ndjson(
        {"event": "b"})

    summary = post(secret, "web", body).json()

    assert (summary["stored"], summary["failed"]) == (2, 1)
    assert summary["failures"][0]["line"] == 2
    failure = failures(account)[0]
    assert failure.body_truncated and len(failure.body) == FailedEvent.BODY_LIMIT


def test_unpaired_surrogates_and_nul_are_replaced_as_on_other_paths(
    account: Account, secret: str
) -> None:
    body = b'{"v": "\\ud800", "userId": "a\\u0000b"}\n{"v": "\\ud83d\\ude00"}\n'

    summary = post(secret, "web", body).json()

    assert (summary["stored"], summary["failed"]) == (2, 0)
    replaced, emoji = rows(account)
    assert replaced.message == {"v": "\ufffd", "userId": "a\ufffdb"}
    assert replaced.user_id == "a\ufffdb"
    assert {w["code"] for w in replaced.warnings} == {"invalid_unicode", "nul_character"}
    assert emoji.message == {"v": "\U0001F600"} and emoji.warnings is None


def test_a_nul_in_a_csv_value_is_replaced(account: Account, secret: str) -> None:
    summary = post(secret, "crm", b"userId,name\nu\x001,Ann\n", "text/csv").json()

    assert summary["stored"] == 1
    assert rows(account)[0].user_id == "u\ufffd1"
    assert rows(account)[0].message == {"userId": "u\ufffd1", "name": "Ann"}


def test_message_ids_follow_collects_rule(account: Account, secret: str) -> None:
    long_id = "x" * 150
    body = ndjson({"messageId": {"not": "an id"}}, {"messageId": long_id, "n": 1},
                  {"messageId": long_id, "n": 2}, {"messageId": 12345})

    summary = post(secret, "web", body).json()

    assert summary["failures"] == [{"line": 1, "code": "invalid_message_id",
                                    "reason": "Line 1: a message id is a string or a number."}]
    assert (summary["stored"], summary["duplicates"]) == (2, 1)
    digest, number = rows(account)
    assert digest.message_id.startswith("sha1-") and digest.message["n"] == 1
    assert digest.warnings[0]["code"] == "message_id_too_long"
    assert number.message_id == "12345"


def test_duplicates_within_the_file_are_stored_once(account: Account, secret: str) -> None:
    body = ndjson(*({"event": f"e{i}", "mid": f"m{i % 3}"} for i in range(7)))
    # More than one batch, so the rule also holds across COPY batches.
    body += ndjson(*({"event": "late", "mid": f"m{i}"} for i in range(bulk.BATCH_ROWS + 1)))

    summary = post(secret, "web", body, query="message_id_field=mid").json()

    assert summary["received"] == 7 + bulk.BATCH_ROWS + 1
    assert summary["stored"] == bulk.BATCH_ROWS + 1
    assert summary["duplicates"] == 4 + 3  # m0-m2 again in the first rows, then in the rest
    first_three = RawEvent.objects.for_account(account).filter(message_id__in=["m0", "m1", "m2"])
    assert sorted(first_three.values_list("event", flat=True)) == ["e0", "e1", "e2"]


def test_events_already_stored_by_another_path_are_not_stored_again(
    account: Account, secret: str
) -> None:
    store_events(account, "web", [IncomingEvent(message={"event": "api"}, event="api",
                                                message_id="seen-1")],
                 source="api", received_at=timezone.now())
    post(secret, "web", ndjson({"event": "first", "messageId": "seen-2"}))

    summary = post(secret, "web", ndjson(
        {"event": "again", "messageId": "seen-1"},
        {"event": "again", "messageId": "seen-2"},
        {"event": "new", "messageId": "seen-3"},
    )).json()

    assert (summary["stored"], summary["duplicates"]) == (1, 2)
    assert [r.event for r in rows(account)] == ["api", "first", "new"]


def test_a_message_id_older_than_seven_days_is_stored_again(
    account: Account, secret: str
) -> None:
    store_events(account, "web", [IncomingEvent(message={}, message_id="old")], source="api",
                 received_at=timezone.now() - timedelta(days=8))
    assert MessageId.objects.for_account(account).get().seen_at < timezone.now() - timedelta(7)

    assert post(secret, "web", ndjson({"messageId": "old"})).json()["stored"] == 1


def test_the_same_message_id_in_another_account_is_stored(account: Account, secret: str) -> None:
    other = make_account("Globex")
    post(make_token(other, ["data_manager"])[1], "web", ndjson({"messageId": "shared"}))

    assert post(secret, "web", ndjson({"messageId": "shared"})).json()["stored"] == 1


@pytest.mark.parametrize("case", ["unknown", "expired", "revoked", "malformed"])
def test_a_bad_token_is_refused_with_401(account: Account, case: str) -> None:
    token, secret = make_token(account, ["admin"])
    if case == "unknown":
        secret = "stk_" + "x" * 43
    elif case == "expired":
        AccessToken.objects.filter(pk=token.pk).update(
            expires_at=timezone.now() - timedelta(minutes=1))
    elif case == "revoked":
        access.revoke_access_token(token, actor=system_actor(account))
    else:
        secret = "not-a-token"

    response = post(secret, "web", ndjson({"event": "x"}))

    assert response.status_code == 401
    assert response.json()["code"] == "invalid_token"
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert not rows(account)


def test_no_token_is_refused_with_401(account: Account) -> None:
    response = post(None, "web", ndjson({"event": "x"}))

    assert response.status_code == 401
    assert not rows(account)


@pytest.mark.parametrize("role", ["marketer", "observer", "user_search"])
def test_a_token_without_schema_edit_is_refused_with_403(account: Account, role: str) -> None:
    response = post(make_token(account, [role])[1], "web", ndjson({"event": "x"}))

    assert response.status_code == 403
    assert response.json()["code"] == "permission_denied"
    assert not rows(account)


def test_an_admin_token_may_import(account: Account) -> None:
    assert post(make_token(account, ["admin"])[1], "web", ndjson({"e": 1})).status_code == 200


def test_a_write_key_is_not_an_access_token(account: Account) -> None:
    write_key = access.create_write_key(account=account, actor=system_actor(account),
                                        name="site").secret

    assert post(write_key, "web", ndjson({"event": "x"})).status_code == 401


def test_the_summary_lists_the_first_twenty_failures_and_keeps_them_all(
    account: Account, secret: str
) -> None:
    body = b"".join(b"oops\n" for _ in range(30)) + ndjson({"event": "fine"})

    summary = post(secret, "web", body).json()

    assert (summary["failed"], summary["stored"]) == (30, 1)
    assert [f["line"] for f in summary["failures"]] == list(range(1, 21))
    assert len(failures(account)) == 30


def test_a_blocking_tracking_plan_sends_the_event_to_failed_events_with_its_line(
    account: Account, secret: str
) -> None:
    TrackingPlan.objects.create(
        account=account, stream="web", event="Signed Up", mode=TrackingPlan.Mode.BLOCK,
        schema={"type": "object", "required": ["plan"]},
    )
    TrackingPlan.objects.create(
        account=account, stream="web", event="Viewed", mode=TrackingPlan.Mode.ALLOW,
        schema={"type": "object", "required": ["page"]},
    )

    summary = post(secret, "web", ndjson(
        {"event": "Signed Up", "plan": "pro"},
        {"event": "Signed Up"},
        {"event": "Viewed"},
    )).json()

    assert (summary["stored"], summary["failed"]) == (2, 1)
    assert summary["failures"][0]["line"] == 2
    assert summary["failures"][0]["code"] == "tracking_plan"
    assert rows(account)[1].warnings[0]["code"] == "tracking_plan"


def test_over_the_monthly_quota_nothing_is_stored_and_the_answer_is_429(
    account: Account, secret: str
) -> None:
    from profiles.collection import usage
    from profiles.models import StreamHourlyCount

    account.monthly_event_quota = 10
    account.save()
    StreamHourlyCount.objects.create(account=account, stream="web",
                                     hour=timezone.now().replace(minute=0, second=0,
                                                                 microsecond=0), events=10)
    usage._cache.clear()

    response = post(secret, "web", ndjson({"event": "x"}))

    assert response.status_code == 429
    assert int(response["Retry-After"]) > 0
    assert not rows(account)


@pytest.mark.parametrize("body,code", [
    (gzip.compress(ndjson({"a": 1}) * 100, mtime=0)[:-20], "invalid_gzip"),
    (b"not gzip at all", "invalid_gzip"),
], ids=["truncated-gzip", "not-gzip"])
def test_a_broken_gzip_body_stores_nothing(account: Account, secret: str, body: bytes,
                                           code: str) -> None:
    response = post(secret, "web", body, **{"Content-Encoding": "gzip"})

    assert response.status_code == 400
    assert response.json()["code"] == code
    assert not rows(account) and not failures(account)


def test_a_csv_header_with_repeated_names_is_refused(account: Account, secret: str) -> None:
    response = post(secret, "web", b"a,b,a\n1,2,3\n", "text/csv")

    assert response.status_code == 400
    assert response.json()["code"] == "invalid_csv"


def test_the_body_limit_is_large_by_default_and_configurable(
    account: Account, secret: str, settings: Any
) -> None:
    assert bulk.max_body_bytes() == 2 * 1024**3
    body = ndjson(*({"event": "x", "pad": "p" * 100} for _ in range(6000)))  # ~700 KB
    assert post(secret, "web", body).json()["stored"] == 6000  # past the 500 KB API limit

    settings.STRATA_BULK_MAX_BYTES = 100_000
    response = post(secret, "web", body)

    assert response.status_code == 413
    assert response.json()["code"] == "body_too_large"
    assert RawEvent.objects.for_account(account).count() == 6000


def test_a_gzip_bomb_stops_at_the_decompressed_cap(
    account: Account, secret: str, settings: Any
) -> None:
    settings.STRATA_BULK_MAX_DECOMPRESSED_BYTES = 1_000_000
    bomb = gzip.compress(ndjson({"event": "x"}) * 200_000)  # ~3 MB inflated, a few KB sent

    response = post(secret, "web", bomb, **{"Content-Encoding": "gzip"})

    assert response.status_code == 413
    assert not rows(account)


def test_a_bad_stream_name_is_refused(secret: str) -> None:
    assert post(secret, "no%20spaces", ndjson({"a": 1})).status_code == 400


def test_get_is_not_allowed(secret: str) -> None:
    response = Client().get("/collect/bulk/web", headers={"Authorization": f"Bearer {secret}"})

    assert response.status_code == 405


def test_split_lines_caps_what_it_keeps_of_a_long_line_across_chunks() -> None:
    data = b"a\n" + b"x" * 100 + b"\nb\n" + b"y" * 30
    chunks = [data[i:i + 7] for i in range(0, len(data), 7)]

    lines = list(bulk.split_lines(chunks, keep=10))

    assert lines == [(1, b"a", False), (2, b"x" * 11, True), (3, b"b", False),
                     (4, b"y" * 11, True)]


def test_gunzip_streams_several_members_fed_in_small_pieces() -> None:
    plain = b"".join(b"%d,%s\n" % (i, b"z" * (i % 700)) for i in range(20_000))  # ~7 MB
    packed = gzip.compress(plain[:1_000_000]) + gzip.compress(plain[1_000_000:])
    pieces = (packed[i:i + 1000] for i in range(0, len(packed), 1000))

    assert b"".join(bulk.gunzip_chunks(pieces, cap=len(plain))) == plain


class GeneratedBody:
    """A large NDJSON body made on the fly, with a known length, read by requests in pieces:
    neither the client nor the test ever holds it whole."""

    ROW = 1024

    def __init__(self, rows: int, prefix: str = "mem") -> None:
        self.rows = rows
        self.prefix = prefix
        self.len = rows * self.ROW
        self.next_row = 0
        self.pending = b""

    def _row(self, i: int) -> bytes:
        start = json.dumps({"type": "track", "event": "Viewed", "userId": f"u{i % 5000}",
                            "messageId": f"{self.prefix}-{i}", "ts": 1700000000 + i, "pad": ""})
        line = start[:-2] + "x" * (self.ROW - len(start) - 1) + '"}'
        return line.encode() + b"\n"

    def read(self, size: int = 65536) -> bytes:
        while len(self.pending) < size and self.next_row < self.rows:
            self.pending += b"".join(self._row(i) for i in range(
                self.next_row, min(self.next_row + 256, self.rows)))
            self.next_row = min(self.next_row + 256, self.rows)
        out, self.pending = self.pending[:size], self.pending[size:]
        return out


class PeakRss:
    """The process's highest resident size while running (sampled every 10 ms)."""

    def __init__(self) -> None:
        self.process = psutil.Process()
        self.peak = self.process.memory_info().rss
        self.running = True
        self.thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while self.running:
            self.peak = max(self.peak, self.process.memory_info().rss)
            time.sleep(0.01)

    def __enter__(self) -> PeakRss:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.running = False
        self.thread.join()


@pytest.mark.slow
def test_a_large_streamed_body_is_imported_in_flat_memory(
    transactional_db: Any, live_server: Any
) -> None:
    account = make_account("Bigco")
    secret = make_token(account, ["data_manager"])[1]
    url = f"{live_server.url}/collect/bulk/web?timestamp_field=ts"
    headers = {"Authorization": f"Bearer {secret}", "Content-Type": NDJSON}
    # Warm up: imports, the connection, the first COPY.
    assert requests.post(url, data=GeneratedBody(100, "warm"), headers=headers, timeout=60).ok
    body = GeneratedBody(64 * 1024)  # 64 MB
    baseline = psutil.Process().memory_info().rss

    with PeakRss() as rss:
        response = requests.post(url, data=body, headers=headers, timeout=120)

    assert response.status_code == 200, response.text
    assert response.json()["stored"] == 64 * 1024
    growth = (rss.peak - baseline) / 1024 / 1024
    print(f"peak RSS growth {growth:.1f} MB for a 64 MB body")
    # Parsing and writing hold a few batches (~15-20 MB); holding the body whole would pass 100.
    assert growth < 50, f"resident memory grew by {growth:.0f} MB for a 64 MB body"
    assert RawEvent.objects.for_account(account).filter(message_id="mem-65535").get(
    ).event_at == datetime.fromtimestamp(1700000000 + 65535, UTC)
