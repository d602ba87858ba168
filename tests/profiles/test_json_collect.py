"""POST /collect/json/{stream}: JSON records from servers (and strata.js), with a write key."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from cdp_site.models import Account
from profiles.models import FailedEvent
from tests.profiles.conftest import basic_auth, failed, make_write_key, nothing_stored, stored

pytestmark = pytest.mark.django_db


def post(client: Client, path: str, body: Any, key: str | None = None, **headers: Any) -> Any:
    data = body if isinstance(body, bytes) else json.dumps(body)
    if key is not None:
        headers.setdefault("HTTP_X_API_KEY", key)
    headers.setdefault("content_type", "application/json")
    return client.post(path, data=data, **headers)


def test_one_object_is_stored_in_the_paths_stream(client: Client, account: Account,
                                                  write_key: str) -> None:
    response = post(client, "/collect/json/crm_users", {
        "email": "a@example.com", "id": 42, "plan": "pro", "userId": "crm-42"}, write_key)
    assert response.status_code == 200
    assert response.json() == {"success": True}
    [row] = stored(account)
    assert (row.stream, row.source, row.user_id, row.type) == ("crm_users", "json", "crm-42", "")
    assert row.message == {"email": "a@example.com", "id": 42, "plan": "pro",
                           "userId": "crm-42"}
    assert row.message_id.startswith("strata-")  # `id` names the record, not the message


def test_without_a_stream_the_write_keys_stream_is_used(client: Client,
                                                        account: Account) -> None:
    _key, secret = make_write_key(account, stream="backend")
    post(client, "/collect/json", {"a": 1}, secret)
    post(client, "/collect/json/", {"a": 2}, secret)
    assert [row.stream for row in stored(account)] == ["backend", "backend"]


def test_an_array_is_stored_in_order_with_ids_types_and_times(
        client: Client, account: Account, write_key: str) -> None:
    body = [
        {"messageId": "m-1", "type": "track", "event": "Paid", "anonymousId": "a-1",
         "timestamp": "2024-03-01T12:00:00Z"},
        {"_mid": "m-2", "_e": "pv", "_uid": "v-2", "_ts": 1_709_294_400_000},
        {"_e": "signup", "user_id": "u-3", "originalTimestamp": "2024-03-02T00:00:00+01:00"},
    ]
    response = post(client, "/collect/json/web", body, write_key)
    assert response.status_code == 200
    first, second, third = stored(account)
    assert (first.message_id, first.type, first.event, first.anonymous_id) == (
        "m-1", "track", "Paid", "a-1")
    assert first.event_at == datetime(2024, 3, 1, 12, tzinfo=UTC)
    assert (second.message_id, second.type, second.event, second.anonymous_id) == (
        "m-2", "page", "", "v-2")
    assert second.event_at == datetime(2024, 3, 1, 12, tzinfo=UTC)
    assert (third.type, third.event, third.user_id) == ("track", "signup", "u-3")
    assert third.event_at == datetime(2024, 3, 1, 23, tzinfo=UTC)


def test_timestamp_field_names_the_event_time(client: Client, account: Account,
                                              write_key: str) -> None:
    post(client, "/collect/json/orders?timestamp_field=order.placed_at",
         {"order": {"placed_at": "2023-12-24T18:00:00Z"}, "timestamp": "2020-01-01T00:00:00Z"},
         write_key)
    assert stored(account)[0].event_at == datetime(2023, 12, 24, 18, tzinfo=UTC)


def test_sent_at_corrects_skew(client: Client, account: Account, write_key: str) -> None:
    client_now = timezone.now() - timedelta(minutes=30)  # the server's clock runs slow
    post(client, "/collect/json/web", [{
        "timestamp": (client_now - timedelta(seconds=5)).isoformat(),
        "sentAt": client_now.isoformat()}], write_key)
    row = stored(account)[0]
    assert abs((row.received_at - row.event_at) - timedelta(seconds=5)) < timedelta(seconds=1)


@pytest.mark.parametrize("how", ["basic", "bearer", "bare", "query", "body"])
def test_write_key_forms(client: Client, account: Account, write_key: str, how: str) -> None:
    headers = {"basic": {"HTTP_AUTHORIZATION": basic_auth(write_key)},
               "bearer": {"HTTP_AUTHORIZATION": f"Bearer {write_key}"},
               "bare": {"HTTP_AUTHORIZATION": write_key}, "query": {}, "body": {}}[how]
    path = f"/collect/json/s?writeKey={write_key}" if how == "query" else "/collect/json/s"
    body = {"a": 1, "writeKey": write_key} if how == "body" else {"a": 1}
    assert post(client, path, body, **headers).status_code == 200
    [row] = stored(account)
    assert row.message == {"a": 1}


def test_duplicates_are_stored_once(client: Client, account: Account, write_key: str) -> None:
    post(client, "/collect/json/s", [{"messageId": "d"}, {"messageId": "d"}], write_key)
    post(client, "/collect/json/s", {"_mid": "d"}, write_key)
    assert len(stored(account)) == 1


def test_strata_js_batch_shape(client: Client, account: Account, write_key: str) -> None:
    """What strata.js sends for a named stream: Segment-shaped messages, text/plain."""
    now = timezone.now().isoformat()
    body = [{"type": "track", "event": "Added to cart", "messageId": "sj-1",
             "anonymousId": "v-1", "timestamp": now, "sentAt": now,
             "properties": {"sku": "A1", "_uid": "v-1"}, "context": {"library": {}}}]
    response = post(client, f"/collect/json/cart?writeKey={write_key}", body,
                    content_type="text/plain")
    assert response.status_code == 200
    [row] = stored(account)
    assert (row.stream, row.type, row.event, row.anonymous_id) == (
        "cart", "track", "Added to cart", "v-1")


# ---- bad input ---------------------------------------------------------------------------

def test_invalid_json(client: Client, account: Account, write_key: str) -> None:
    with nothing_stored():
        response = post(client, "/collect/json/s", b"{'single': 'quotes'}", write_key)
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_json"
    [failure] = failed(account)
    assert (failure.code, failure.stream, failure.source) == ("invalid_json", "s", "json")


def test_a_body_that_is_not_an_object_or_array(client: Client, account: Account,
                                               write_key: str) -> None:
    with nothing_stored():
        response = post(client, "/collect/json/s", "just a string", write_key)
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_body"


def test_body_over_500_kb(client: Client, account: Account, write_key: str) -> None:
    with nothing_stored():
        response = post(client, "/collect/json/s", [{"pad": "x" * 1000}] * 520, write_key)
    assert response.status_code == 400
    assert response.json()["code"] == "body_too_large"


def test_message_over_32_kb_is_rejected_alone(client: Client, account: Account,
                                              write_key: str) -> None:
    response = post(client, "/collect/json/s",
                    [{"messageId": "big", "pad": "x" * 40_000}, {"messageId": "ok"}], write_key)
    assert response.status_code == 200
    assert [r["code"] for r in response.json()["rejected"]] == ["message_too_large"]
    assert [row.message_id for row in stored(account)] == ["ok"]
    assert [(f.code, f.line) for f in failed(account)] == [("message_too_large", 1)]


def test_one_object_over_32_kb_answers_400(client: Client, account: Account,
                                           write_key: str) -> None:
    with nothing_stored():
        response = post(client, "/collect/json/s", {"pad": "x" * 40_000}, write_key)
    assert response.status_code == 400
    assert response.json()["code"] == "message_too_large"


def test_2501_records_are_refused(client: Client, account: Account, write_key: str) -> None:
    with nothing_stored():
        response = post(client, "/collect/json/s", [{"n": i} for i in range(2501)], write_key)
    assert response.status_code == 400
    assert response.json()["code"] == "too_many_messages"


def test_missing_write_key(client: Client, account: Account) -> None:
    with nothing_stored():
        response = post(client, "/collect/json/s", {"a": 1})
    assert response.status_code == 401
    assert response.json()["code"] == "missing_write_key"
    assert failed(None)[0].stream == "s"


def test_unknown_write_key(client: Client, account: Account) -> None:
    presented = "swk_" + "q" * 43
    with nothing_stored():
        response = post(client, "/collect/json/s", {"a": 1}, presented)
    assert response.status_code == 401
    [failure] = failed(None)
    assert failure.key_prefix == presented[:12]
    assert presented not in failure.body


def test_write_key_of_a_disabled_account(client: Client, account: Account,
                                         write_key: str) -> None:
    account.enabled = False
    account.save()
    with nothing_stored():
        response = post(client, "/collect/json/s", [{"a": 1}], write_key)
    assert response.status_code == 403
    assert response.json()["code"] == "account_disabled"
    assert failed(account)[0].code == "account_disabled"


def test_records_without_ids_are_kept(client: Client, account: Account, write_key: str) -> None:
    # Unlike the Segment-spec API, plain records need no userId/anonymousId.
    assert post(client, "/collect/json/s", {"sku": "A1", "price": 3}, write_key).status_code == 200
    assert stored(account)[0].anonymous_id == ""


def test_bad_and_future_timestamps_keep_the_record_with_a_warning(
        client: Client, account: Account, write_key: str) -> None:
    ahead = (timezone.now() + timedelta(days=3)).isoformat()
    post(client, "/collect/json/s", [{"timestamp": "not a date"}, {"timestamp": ahead}],
         write_key)
    first, second = stored(account)
    assert first.event_at == first.received_at
    assert first.warnings[0]["code"] == "invalid_timestamp"
    assert second.event_at == second.received_at
    assert second.warnings[0]["code"] == "future_timestamp"


def test_non_utf8(client: Client, account: Account, write_key: str) -> None:
    with nothing_stored():
        response = post(client, "/collect/json/s", b'{"name": "caf\xe9"}', write_key)
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_encoding"


def test_nested_over_32_levels(client: Client, account: Account, write_key: str) -> None:
    deep: Any = {}
    for _ in range(32):
        deep = {"n": deep}
    response = post(client, "/collect/json/s", [deep, {"n": 1}], write_key)
    assert response.status_code == 200
    assert len(stored(account)) == 1
    assert failed(account)[0].code == "too_deep"


def test_gzip_bomb(client: Client, account: Account, write_key: str) -> None:
    bomb = gzip.compress(b"[" + b"{}," * (10 * 1024 * 1024) + b"{}]", 9)
    with nothing_stored():
        response = post(client, "/collect/json/s", bomb, write_key, HTTP_CONTENT_ENCODING="gzip")
    assert response.status_code == 400
    assert response.json()["code"] == "body_too_large"


def test_gzip_body(client: Client, account: Account, write_key: str) -> None:
    body = gzip.compress(json.dumps([{"messageId": "gz"}]).encode())
    assert post(client, "/collect/json/s", body, write_key,
                HTTP_CONTENT_ENCODING="gzip").status_code == 200
    assert stored(account)[0].message_id == "gz"


def test_a_record_that_is_not_an_object_is_rejected_alone(
        client: Client, account: Account, write_key: str) -> None:
    post(client, "/collect/json/s", [1, {"ok": True}], write_key)
    assert len(stored(account)) == 1
    assert failed(account)[0].code == "invalid_message"


def test_options_preflight(client: Client, account: Account) -> None:
    with nothing_stored():
        response = client.options("/collect/json/web", HTTP_ORIGIN="https://any.example",
                                  HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST",
                                  HTTP_ACCESS_CONTROL_REQUEST_HEADERS="authorization")
    assert response.status_code == 200
    assert response["Access-Control-Allow-Origin"] == "*"
    allowed = {h.strip().lower() for h in response["Access-Control-Allow-Headers"].split(",")}
    assert {"authorization", "content-type", "x-api-key"} <= allowed
    assert FailedEvent.objects.count() == 0
