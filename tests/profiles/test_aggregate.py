"""The stream aggregator: counts, raw keys (types, samples, distinct values), violations, and
exactly-once folding under reruns, concurrent runs and late commits."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connections
from django.db.models import Sum

from cdp_site.models import Account
from profiles.collection.messages import Failure
from profiles.collection.store import record_failures
from profiles.explorer import aggregate
from profiles.explorer.aggregate import (
    estimate_distinct,
    merge_sketch,
    predict_type,
    summarize_events,
    summarize_in_parallel,
    value_hash,
)
from profiles.models import RawKey, StreamHourlyCount, ViolationCount
from tests import dbenv
from tests.conftest import make_account
from tests.profiles.raw_events import ago, run_aggregator, store, track


@pytest.fixture(autouse=True)
def fresh_fences() -> Iterator[None]:
    aggregate.forget_fences()
    yield
    aggregate.forget_fences()


def hourly(account: Account, stream: str = "web") -> list[tuple[datetime, int]]:
    rows = StreamHourlyCount.objects.for_account(account).filter(stream=stream).order_by("hour")
    return [(row.hour, row.events) for row in rows]


def total(account: Account) -> int:
    counted = StreamHourlyCount.objects.for_account(account).aggregate(n=Sum("events"))["n"]
    return int(counted or 0)


def key(account: Account, path: str, stream: str = "web") -> RawKey:
    return RawKey.objects.for_account(account).get(stream=stream, key=path)


def test_counts_events_per_stream_and_hour(account: Account) -> None:
    ten = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=3)
    store(account, [track()] * 2, received_at=ten + timedelta(minutes=15))
    store(account, [track()], received_at=ten + timedelta(minutes=45))
    store(account, [track()], received_at=ten + timedelta(hours=1, minutes=5))
    store(account, [track()], stream="app", received_at=ten + timedelta(minutes=1))

    result = run_aggregator()

    assert result.events >= 5
    assert hourly(account) == [(ten, 3), (ten + timedelta(hours=1), 1)]
    assert hourly(account, "app") == [(ten, 1)]
    first = StreamHourlyCount.objects.for_account(account).get(stream="web", hour=ten)
    assert first.last_message_at == ten + timedelta(minutes=45)


def test_raw_keys_flatten_nested_objects_and_arrays(account: Account) -> None:
    store(account, [{
        "type": "track", "event": "Order Completed", "userId": "u1",
        "properties": {"price": 9.5, "quantity": 2, "gift": False, "tags": ["a", "b"],
                       "shipping": {"address": {"city": "Oslo"}}, "extra": {}},
        "context": {"page": {"url": "https://shop.example.com/"}},
        "timestamp": "2026-01-02T03:04:05.678Z",
    }])

    run_aggregator()

    keys = {k.key: k.predicted_type for k in RawKey.objects.for_account(account)}
    assert keys == {
        "messageId": "string", "type": "string", "event": "string", "userId": "string",
        "properties.price": "number", "properties.quantity": "int", "properties.gift": "bool",
        "properties.tags[]": "array", "properties.shipping.address.city": "string",
        "properties.extra": "object", "context.page.url": "string", "timestamp": "date",
    }
    assert key(account, "properties.tags[]").samples == ['["a","b"]']


def test_predicted_type_follows_most_values_and_ints_join_numbers(account: Account) -> None:
    store(account, [track(amount=1), track(amount=2), track(amount=2.5),
                    track(when="2026-03-01"), track(when="2026-03-02"), track(when="soon"),
                    track(note=None)])

    run_aggregator()

    amount = key(account, "properties.amount")
    assert amount.type_counts == {"int": 2, "number": 1}
    assert amount.predicted_type == "number"
    when = key(account, "properties.when")
    assert when.type_counts == {"date": 2, "string": 1}
    assert when.predicted_type == "date"
    note = key(account, "properties.note")
    assert note.type_counts == {"null": 1}
    assert (note.predicted_type, note.samples, note.sketch) == ("string", [], [])


def test_predict_type_rules() -> None:
    assert predict_type({"string": 3, "int": 1}) == "string"
    assert predict_type({"int": 3, "number": 1}) == "number"
    assert predict_type({"bool": 2, "null": 9}) == "bool"
    assert predict_type({}) == "string"


def test_times_seen_and_first_and_last_seen(account: Account) -> None:
    early, late = ago(hours=5), ago(hours=1)
    store(account, [track(coupon="A")], received_at=early)
    store(account, [track()], received_at=ago(hours=3))
    store(account, [track(coupon="B")], received_at=late)

    run_aggregator()

    coupon = key(account, "properties.coupon")
    assert (coupon.times_seen, coupon.first_seen, coupon.last_seen) == (2, early, late)
    assert key(account, "event").times_seen == 3


def test_samples_are_the_ten_most_recent_distinct_values(account: Account) -> None:
    store(account, [track(colour=f"c{n}") for n in range(8)], received_at=ago(hours=2))
    run_aggregator()
    store(account, [track(colour=c) for c in ["c3", "x1", "x2", "x3", "x3"]])
    run_aggregator()

    samples = key(account, "properties.colour").samples
    assert samples == ["x3", "x2", "x1", "c3", "c7", "c6", "c5", "c4", "c2", "c1"]


def test_long_values_are_cut_in_samples(account: Account) -> None:
    store(account, [track(text="y" * 1000)])
    run_aggregator()
    assert key(account, "properties.text").samples == ["y" * aggregate.SAMPLE_CHARS]


def test_distinct_estimate_within_ten_percent_for_10k_values(account: Account) -> None:
    store(account, [track(order_id=f"order-{n}", country=["no", "se", "dk"][n % 3])
                    for n in range(10_000)])

    run_aggregator(chunk_size=3_000)

    order = key(account, "properties.order_id")
    assert len(order.sketch) == aggregate.SKETCH_SIZE
    assert abs(estimate_distinct(order.sketch) - 10_000) / 10_000 < 0.10
    assert estimate_distinct(key(account, "properties.country").sketch) == 3  # exact below k
    assert order.times_seen == 10_000


def test_merged_sketch_is_the_sketch_of_the_union() -> None:
    hashes = [value_hash(f"v{n}") for n in range(5_000)]
    whole = sorted(hashes)[: aggregate.SKETCH_SIZE]
    left = sorted(hashes[:3_000])[: aggregate.SKETCH_SIZE]
    right = sorted(hashes[2_000:])[: aggregate.SKETCH_SIZE]
    assert merge_sketch(left, right) == whole
    assert merge_sketch(whole, whole) == whole


def test_value_hash_is_stable_across_processes() -> None:
    # blake2b, not Python's per-process salted hash(): sketches stored by one process merge
    # with those of the next
    assert value_hash("hello") == 9022087748821825191


def test_running_twice_counts_once(account: Account) -> None:
    store(account, [track(sku="a"), track(sku="b")])
    run_aggregator()
    run_aggregator()
    assert total(account) == 2
    assert key(account, "properties.sku").times_seen == 2
    store(account, [track(sku="c")])
    run_aggregator()
    assert total(account) == 3
    assert key(account, "properties.sku").times_seen == 3


def test_events_inside_the_settle_window_wait(account: Account) -> None:
    store(account, [track()], received_at=ago(minutes=2))
    store(account, [track()], received_at=ago(seconds=0))
    store(account, [track()], received_at=ago(minutes=2))  # after the young one: waits too

    aggregate.aggregate_streams(settle_seconds=30)

    assert total(account) == 1
    run_aggregator()
    assert total(account) == 3


def test_violations_from_warnings_and_blocked_failed_events(account: Account) -> None:
    violation = [{"code": "tracking_plan", "violations": [{"path": "x", "message": "bad"}]}]
    store(account, [track("Signed Up")] * 2, warnings=violation)
    store(account, [track("Signed Up")], warnings=[{"code": "invalid_timestamp"}])
    record_failures(
        [Failure("tracking_plan", "Violates the tracking plan for 'Signed Up': x: bad",
                 body='{"type": "track", "event": "Signed Up"}'),
         Failure("invalid_json", "not JSON", body="{")],
        account=account, stream="web", source="test", received_at=ago(minutes=1),
    )

    result = run_aggregator()
    run_aggregator()

    assert result.failed_events >= 2
    rows = ViolationCount.objects.for_account(account)
    assert [(r.stream, r.event, r.violations, r.blocked) for r in rows] == [
        ("web", "Signed Up", 2, 1)
    ]


def test_keys_per_stream_are_capped(account: Account, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(aggregate, "MAX_KEYS_PER_STREAM", 5)
    store(account, [{"type": "track", "event": "x", **{f"k{n}": n for n in range(10)}}])
    store(account, [{"type": "track", "event": "x", "k0": 1}], stream="other")
    run_aggregator()
    assert RawKey.objects.for_account(account).filter(stream="web").count() == 5
    assert RawKey.objects.for_account(account).filter(stream="other").count() == 4
    kept = set(RawKey.objects.for_account(account).filter(stream="web")
               .values_list("key", flat=True))
    store(account, [{"type": "track", "event": "x", **{f"k{n}": n for n in range(10)}}])
    run_aggregator()  # known keys keep being counted, no new one is added
    web = RawKey.objects.for_account(account).filter(stream="web")
    assert {k.key: k.times_seen for k in web} == dict.fromkeys(kept, 2)


def test_hidden_keys_stay_hidden_while_counted(account: Account) -> None:
    store(account, [track(a=1)])
    run_aggregator()
    RawKey.objects.for_account(account).filter(key="properties.a").update(hidden=True)
    store(account, [track(a=2)])
    run_aggregator()
    assert key(account, "properties.a").hidden is True
    assert key(account, "properties.a").times_seen == 2


def _rows() -> list[tuple[Any, ...]]:
    base = int(datetime(2026, 5, 1, 10, tzinfo=UTC).timestamp() * 1_000_000)
    return [
        (n, 1 + n % 2, "web", base + n * 60_000_000, "e", "track",
         f'{{"event": "e", "n": {n % 7}, "s": "v{n}", "o": {{"deep": [{n}]}}}}', None)
        for n in range(40)
    ]


def test_summaries_of_slices_merge_to_the_summary_of_the_whole() -> None:
    rows = _rows()
    whole = summarize_events(rows)
    merged = summarize_events(rows[20:]).merge_older(summarize_events(rows[:20]))
    assert merged == whole


def test_worker_processes_summarise_as_one_process_does() -> None:
    rows = _rows()
    try:
        assert summarize_in_parallel(rows, workers=2) == summarize_events(rows)
    finally:
        aggregate.shutdown_workers()


def test_management_command_runs_once(account: Account) -> None:
    store(account, [track()], received_at=ago(minutes=5))
    call_command("aggregate_streams", "--chunk-size", "100")
    assert total(account) == 1


# Concurrency: these tests commit (tests/conftest.py restores the seeded rows and empties the
# raw store after each).

committing = pytest.mark.django_db(transaction=True, serialized_rollback=True)


@pytest.fixture
def committed_account(db: None) -> Account:
    return make_account("Committed")


@committing
def test_two_concurrent_runs_count_once(committed_account: Account) -> None:
    for _ in range(5):
        store(committed_account, [track(sku=f"s{n}") for n in range(400)])
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def run(read_ahead: bool) -> None:
        try:
            barrier.wait()
            run_aggregator(chunk_size=300, read_ahead=read_ahead)
        except BaseException as error:  # reported by the test
            errors.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(read_ahead,)) for read_ahead in (False, True)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    aggregate.shutdown_workers()
    assert errors == []
    assert total(committed_account) == 2_000
    assert key(committed_account, "properties.sku").times_seen == 2_000


@committing
def test_reading_ahead_counts_every_event_once(committed_account: Account) -> None:
    for n in range(7):
        store(committed_account, [track(sku=f"s{n}-{i}") for i in range(300)])
    try:
        result = run_aggregator(chunk_size=250, read_ahead=True)
    finally:
        aggregate.shutdown_workers()
    assert result.chunks >= 9
    assert total(committed_account) == 2_100
    sku = key(committed_account, "properties.sku")
    assert sku.times_seen == 2_100
    assert abs(estimate_distinct(sku.sketch) - 2_100) / 2_100 < 0.15


@pytest.mark.own_connection
@committing
def test_rows_of_a_transaction_still_open_are_not_skipped(committed_account: Account) -> None:
    store(committed_account, [track()])
    run_aggregator()
    assert total(committed_account) == 1
    late = dbenv.connect()
    try:
        late.execute(  # a lower id, held by a transaction that commits after later rows
            "INSERT INTO profiles_rawevent (account_id, stream, message_id, received_at, "
            "event_at, source, message) VALUES (%s, 'web', 'late', now() - interval '1 hour', "
            "now(), 'test', '{\"late\": true}')",
            [committed_account.pk],
        )
        store(committed_account, [track()])  # committed, with a higher id

        run_aggregator()
        assert total(committed_account) == 1  # waits for the open transaction

        late.commit()
        run_aggregator()
        assert total(committed_account) == 3
        assert key(committed_account, "late").times_seen == 1
    finally:
        late.close()
