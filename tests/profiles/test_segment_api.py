"""The Segment-spec tracking API: what each request stores, and every bad input refused
without changing stored data (only failed events are added)."""

from __future__ import annotations

import base64
import gzip
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from cdp_site import access
from cdp_site.models import Account
from profiles.models import FailedEvent, StreamHourlyCount
from tests.conftest import make_account, system_actor
from tests.profiles.conftest import basic_auth, failed, make_write_key, nothing_stored, stored

pytestmark = pytest.mark.django_db


def post(client: Client, path: str, body: Any, key: str | None = None, *,
         content_type: str = "application/json", **headers: Any) -> Any:
    data = body if isinstance(body, bytes) else json.dumps(body)
    if key is not None:
        headers.setdefault("HTTP_AUTHORIZATION", basic_auth(key))
    return client.post(path, data=data, content_type=content_type, **headers)


def track(event: str = "Signed Up", **fields: Any) -> dict[str, Any]:
    return {"type": "track", "event": event, "userId": "u-1", **fields}


# ---- what is stored ------------------------------------------------------------------------

def test_track_is_stored_with_its_columns(client: Client, account: Account,
                                          write_key: str) -> None:
    response = post(client, "/v1/track", {
        "userId": "u-1", "anonymousId": "a-1", "event": "Order Completed", "messageId": "m-1",
        "properties": {"total": 12.5}, "timestamp": "2024-05-01T10:00:00Z",
    }, write_key)
    assert response.status_code == 200
    assert response.json() == {"success": True}
    [row] = stored(account)
    assert (row.type, row.event, row.user_id, row.anonymous_id, row.message_id, row.stream) == (
        "track", "Order Completed", "u-1", "a-1", "m-1", "default")
    assert row.source == "segment"
    assert row.event_at == datetime(2024, 5, 1, 10, tzinfo=UTC)
    assert row.message["properties"] == {"total": 12.5}
    assert row.warnings is None


@pytest.mark.parametrize(("path", "body", "kind"), [
    ("/v1/identify", {"userId": "u-1", "traits": {"email": "a@example.com"}}, "identify"),
    ("/v1/page", {"anonymousId": "a-1", "name": "Home", "properties": {"url": "/"}}, "page"),
    ("/v1/screen", {"userId": "u-1", "name": "Settings"}, "screen"),
    ("/v1/group", {"userId": "u-1", "groupId": "g-1", "traits": {"plan": "pro"}}, "group"),
    ("/v1/alias", {"userId": "u-1", "previousId": "a-1"}, "alias"),
    ("/v1/i", {"userId": "u-1"}, "identify"),
    ("/v1/t", {"userId": "u-1", "event": "Clicked"}, "track"),
    ("/v1/p", {"userId": "u-1"}, "page"),
    ("/v1/s", {"userId": "u-1"}, "screen"),
    ("/v1/g", {"userId": "u-1", "groupId": "g-1"}, "group"),
    ("/v1/a", {"userId": "u-1", "previousId": "a-1"}, "alias"),
])
def test_every_path_stores_its_message_type(client: Client, account: Account, write_key: str,
                                            path: str, body: dict[str, Any], kind: str) -> None:
    assert post(client, path, body, write_key).status_code == 200
    [row] = stored(account)
    assert row.type == kind
    assert row.message["type"] == kind
    assert row.message["messageId"] == row.message_id  # generated when the client sent none


def test_the_path_names_the_type_even_when_the_message_says_otherwise(
        client: Client, account: Account, write_key: str) -> None:
    post(client, "/v1/identify", {"type": "track", "userId": "u-1"}, write_key)
    assert stored(account)[0].type == "identify"


def test_batch_merges_top_level_context_and_integrations_into_each_message(
        client: Client, account: Account, write_key: str) -> None:
    response = post(client, "/v1/batch", {
        "batch": [
            track(messageId="m-1"),
            track(messageId="m-2", context={"ip": "10.0.0.1", "library": {"name": "own"}},
                  integrations={"Mixpanel": False}),
        ],
        "context": {"library": {"name": "analytics-python"}, "locale": "en-GB"},
        "integrations": {"All": True},
    }, write_key)
    assert response.status_code == 200
    first, second = stored(account)
    assert first.message["context"] == {"library": {"name": "analytics-python"},
                                        "locale": "en-GB"}
    assert first.message["integrations"] == {"All": True}
    # The message's own keys win over the batch's.
    assert second.message["context"] == {"library": {"name": "own"}, "locale": "en-GB",
                                         "ip": "10.0.0.1"}
    assert second.message["integrations"] == {"All": True, "Mixpanel": False}


def test_short_batch_path_and_import_alias(client: Client, account: Account,
                                           write_key: str) -> None:
    post(client, "/v1/b", {"batch": [track(messageId="m-1")]}, write_key)
    post(client, "/v1/import", {"batch": [track(messageId="m-2")]}, write_key)
    assert [row.message_id for row in stored(account)] == ["m-1", "m-2"]


def test_write_key_in_the_body_is_enough_and_is_not_stored(client: Client, account: Account,
                                                           write_key: str) -> None:
    response = post(client, "/v1/batch", {"batch": [track(writeKey=write_key)],
                                          "writeKey": write_key})
    assert response.status_code == 200
    [row] = stored(account)
    assert "writeKey" not in row.message
    assert write_key not in json.dumps(row.message)


def test_write_key_only_inside_the_batchs_messages(client: Client, account: Account,
                                                   write_key: str) -> None:
    response = post(client, "/v1/b", {"batch": [track(writeKey=write_key)]},
                    content_type="text/plain")
    assert response.status_code == 200
    assert len(stored(account)) == 1


def test_write_key_cache_lets_a_revoked_key_through_for_at_most_a_few_seconds(
        client: Client, account: Account, monkeypatch: pytest.MonkeyPatch) -> None:
    key, secret = make_write_key(account)
    assert post(client, "/v1/track", track(), secret).status_code == 200
    access.revoke_write_key(key, actor=system_actor(account))
    assert post(client, "/v1/track", track(), secret).status_code == 200  # cached as live
    monkeypatch.setattr(access, "WRITE_KEY_CACHE_SECONDS", 0.0)
    assert post(client, "/v1/track", track(), secret).status_code == 401
    assert len(stored(account)) == 2


def test_a_write_key_records_its_last_use_at_most_once_a_minute(
        client: Client, account: Account, monkeypatch: pytest.MonkeyPatch) -> None:
    key, secret = make_write_key(account)
    assert key.last_used_at is None
    monkeypatch.setattr(access, "WRITE_KEY_CACHE_SECONDS", 0.0)  # every request looks it up
    post(client, "/v1/track", track(), secret)
    key.refresh_from_db()
    first = key.last_used_at
    assert first is not None
    post(client, "/v1/track", track(), secret)
    key.refresh_from_db()
    assert key.last_used_at == first
    two_minutes_ago = timezone.now() - timedelta(minutes=2)
    type(key).objects.filter(pk=key.pk).update(last_used_at=two_minutes_ago)
    post(client, "/v1/track", track(), secret)
    key.refresh_from_db()
    assert key.last_used_at > two_minutes_ago + timedelta(minutes=1)
    unused, _secret = make_write_key(account, stream="other")
    assert post(client, "/v1/track", track(), "sk_wrong").status_code == 401
    unused.refresh_from_db()
    assert unused.last_used_at is None


@pytest.mark.parametrize("how", ["bearer", "x-api-key", "query", "bare"])
def test_other_write_key_forms(client: Client, account: Account, write_key: str,
                               how: str) -> None:
    headers = {"bearer": {"HTTP_AUTHORIZATION": f"Bearer {write_key}"},
               "x-api-key": {"HTTP_X_API_KEY": write_key},
               "query": {}, "bare": {"HTTP_AUTHORIZATION": write_key}}[how]
    path = f"/v1/track?writeKey={write_key}" if how == "query" else "/v1/track"
    assert post(client, path, track(), **headers).status_code == 200
    assert len(stored(account)) == 1


def test_events_go_to_the_write_keys_stream(client: Client, account: Account) -> None:
    _key, secret = make_write_key(account, stream="mobile")
    post(client, "/v1/track", track(), secret)
    [row] = stored(account)
    assert row.stream == "mobile"
    assert row.write_key_id == _key.pk


def test_gzip_body(client: Client, account: Account, write_key: str) -> None:
    body = gzip.compress(json.dumps({"batch": [track(messageId="gz")]}).encode())
    response = post(client, "/v1/batch", body, write_key, HTTP_CONTENT_ENCODING="gzip")
    assert response.status_code == 200
    assert [row.message_id for row in stored(account)] == ["gz"]


def test_text_plain_body_is_parsed_as_json(client: Client, account: Account,
                                           write_key: str) -> None:
    response = post(client, "/v1/t", track(messageId="tp"), write_key, content_type="text/plain")
    assert response.status_code == 200
    assert [row.message_id for row in stored(account)] == ["tp"]


def test_client_metrics_are_accepted_and_discarded(client: Client, account: Account) -> None:
    with nothing_stored():
        response = post(client, "/v1/m", {"series": [{"type": "Counter", "value": 1}]})
    assert response.status_code == 200
    assert FailedEvent.objects.count() == 0


def test_duplicates_are_stored_once(client: Client, account: Account, write_key: str) -> None:
    post(client, "/v1/batch", {"batch": [track(messageId="dup"), track(messageId="dup")]},
         write_key)
    post(client, "/v1/track", track(messageId="dup"), write_key)
    assert [row.message_id for row in stored(account)] == ["dup"]


def test_queries_do_not_grow_with_the_batch(client: Client, account: Account,
                                            write_key: str) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    # The INSERT runs on a plain psycopg cursor, which this does not see; every other query
    # (write key, plans, quota) is made once per request at most, and cached.
    post(client, "/v1/batch", {"batch": [track()]}, write_key)  # warm the process caches
    counts = []
    for size in (1, 100):
        with CaptureQueriesContext(connection) as queries:
            batch = [track(messageId=f"q-{size}-{n}") for n in range(size)]
            assert post(client, "/v1/batch", {"batch": batch}, write_key).status_code == 200
        counts.append(len(queries))
    assert counts[0] == counts[1] <= 2, counts
    assert len(stored(account)) == 102


def test_a_batch_is_stored_in_its_order(client: Client, account: Account,
                                        write_key: str) -> None:
    ids = [f"m-{n:02d}-{'zyxwvutsrq'[n % 10]}" for n in range(30)]
    ids.reverse()
    post(client, "/v1/batch", {"batch": [track(messageId=m) for m in ids]}, write_key)
    assert [row.message_id for row in stored(account)] == ids


def test_a_message_id_over_99_characters_is_digested_and_still_dedupes(
        client: Client, account: Account, write_key: str) -> None:
    long_id = "x" * 150
    post(client, "/v1/track", track(messageId=long_id), write_key)
    post(client, "/v1/track", track(messageId=long_id), write_key)
    [row] = stored(account)
    assert row.message_id.startswith("sha1-")
    assert row.message["messageId"] == long_id
    assert row.warnings[0]["code"] == "message_id_too_long"


def test_skew_is_corrected_with_sent_at(client: Client, account: Account,
                                        write_key: str) -> None:
    # The client's clock runs an hour fast: the event happened 10 s before it was sent.
    client_now = timezone.now() + timedelta(hours=1)
    before = timezone.now()
    post(client, "/v1/batch", {
        "batch": [track(timestamp=(client_now - timedelta(seconds=10)).isoformat())],
        "sentAt": client_now.isoformat(),
    }, write_key)
    [row] = stored(account)
    assert row.sent_at == client_now
    assert abs((row.received_at - row.event_at) - timedelta(seconds=10)) < timedelta(seconds=1)
    assert row.received_at >= before


def test_original_timestamp_is_used_without_timestamp(client: Client, account: Account,
                                                      write_key: str) -> None:
    post(client, "/v1/track", track(originalTimestamp="2024-01-02T03:04:05Z"), write_key)
    assert stored(account)[0].event_at == datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)


def test_null_anonymous_id_is_normal(client: Client, account: Account, write_key: str) -> None:
    assert post(client, "/v1/track", track(anonymousId=None), write_key).status_code == 200
    assert stored(account)[0].anonymous_id == ""


def test_nul_characters_are_replaced_not_fatal(client: Client, account: Account,
                                               write_key: str) -> None:
    response = post(client, "/v1/track", track(properties={"note": "a\x00b", "k\x00": 1}),
                    write_key)
    assert response.status_code == 200
    [row] = stored(account)
    assert row.message["properties"] == {"note": "a\ufffdb", "k\ufffd": 1}
    assert [w["code"] for w in row.warnings] == ["nul_character"]


def test_nul_in_an_id_is_replaced_not_fatal(client: Client, account: Account,
                                           write_key: str) -> None:
    response = post(client, "/v1/track", track(userId="u\x001", messageId="m\x00"), write_key)
    assert response.status_code == 200
    [row] = stored(account)
    assert (row.user_id, row.message_id) == ("u\ufffd1", "m\ufffd")


def test_lone_surrogates_are_replaced_not_fatal(client: Client, account: Account,
                                                write_key: str) -> None:
    body = (b'{"userId": "u-1", "event": "E", '
            b'"properties": {"t": "x\\ud800y", "ok": "\\ud83d\\ude00"}}')
    assert post(client, "/v1/track", body, write_key).status_code == 200
    [row] = stored(account)
    assert row.message["properties"] == {"t": "x\ufffdy", "ok": "\U0001f600"}


def test_quota_exceeded_answers_429_with_integer_retry_after(
        client: Client, account: Account, write_key: str) -> None:
    account.monthly_event_quota = 5
    account.save()
    now = timezone.now()
    StreamHourlyCount.objects.create(account=account, stream="default", events=5,
                                     hour=now.replace(minute=0, second=0, microsecond=0))
    with nothing_stored():
        response = post(client, "/v1/batch", {"batch": [track()]}, write_key)
    assert response.status_code == 429
    assert response["Retry-After"].isdigit() and int(response["Retry-After"]) > 0
    assert response.json()["code"] == "quota_exceeded"


def test_beacon_path_takes_text_plain_with_key_in_query(client: Client, account: Account,
                                                        write_key: str) -> None:
    response = post(client, f"/beacon/v1/batch?writeKey={write_key}",
                    {"batch": [track(messageId="b-1")], "sentAt": timezone.now().isoformat()},
                    content_type="text/plain")
    assert response.status_code == 200
    [row] = stored(account)
    assert (row.message_id, row.source) == ("b-1", "beacon")


def test_source_config_answers_a_source_without_destinations(client: Client, account: Account,
                                                             write_key: str) -> None:
    for path in (f"/sourceConfig/?writeKey={write_key}", f"/sourceConfig?writeKey={write_key}"):
        response = client.get(path)
        assert response.status_code == 200
        source = response.json()["source"]
        assert source["enabled"] is True
        assert source["config"] == {}
        assert source["destinations"] == []
        assert source["workspaceId"] == account.aid
        assert source["id"] and source["name"] == "test key"
    basic = client.get("/sourceConfig/", HTTP_AUTHORIZATION=basic_auth(write_key))
    assert basic.status_code == 200
    assert client.get("/sourceConfig/?writeKey=swk_nope").status_code == 401


def test_get_is_not_allowed(client: Client, write_key: str) -> None:
    with nothing_stored():
        response = client.get(f"/v1/track?writeKey={write_key}")
    assert response.status_code == 405
    assert response.json()["code"] == "method_not_allowed"


# ---- bad input: refused requests store nothing -------------------------------------------

def test_invalid_json_is_refused_and_kept_as_a_failed_event(
        client: Client, account: Account, write_key: str) -> None:
    with nothing_stored():
        response = post(client, "/v1/batch", b'{"batch": [', write_key)
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_json"
    [failure] = failed(account)
    assert failure.code == "invalid_json"
    assert failure.body == '{"batch": ['
    assert failure.stream == "default"


def test_nan_is_not_json(client: Client, account: Account, write_key: str) -> None:
    with nothing_stored():
        response = post(client, "/v1/track", b'{"userId": "u", "event": "E", "v": NaN}',
                        write_key)
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_json"


def test_body_over_500_kb_is_refused(client: Client, account: Account, write_key: str) -> None:
    body = {"batch": [track(properties={"pad": "x" * 20_000}) for _ in range(30)]}
    with nothing_stored():
        response = post(client, "/v1/batch", body, write_key)
    assert response.status_code == 400
    assert response.json()["code"] == "body_too_large"
    [failure] = failed(account)
    assert failure.code == "body_too_large"
    assert failure.body_truncated


def test_message_over_32_kb_is_rejected_alone(client: Client, account: Account,
                                              write_key: str) -> None:
    big = track(messageId="big", properties={"pad": "x" * (33 * 1024)})
    response = post(client, "/v1/batch", {"batch": [track(messageId="ok"), big]}, write_key)
    assert response.status_code == 200
    body = response.json()
    assert body["success"] is True
    assert body["rejected"][0]["code"] == "message_too_large"
    assert [row.message_id for row in stored(account)] == ["ok"]
    [failure] = failed(account)
    assert (failure.code, failure.message_id, failure.line) == ("message_too_large", "big", 2)


def test_single_message_over_32_kb_answers_400(client: Client, account: Account,
                                               write_key: str) -> None:
    with nothing_stored():
        response = post(client, "/v1/track", track(properties={"pad": "é" * 17_000}), write_key)
    assert response.status_code == 400  # 17,000 "é" are 34,000 bytes of UTF-8
    assert response.json()["code"] == "message_too_large"
    assert failed(account)[0].code == "message_too_large"


def test_batch_of_2501_messages_is_refused(client: Client, account: Account,
                                           write_key: str) -> None:
    messages = [{"type": "track", "event": "E", "userId": str(i)} for i in range(2501)]
    with nothing_stored():
        response = post(client, "/v1/batch", {"batch": messages}, write_key)
    assert response.status_code == 400
    assert response.json()["code"] == "too_many_messages"
    assert failed(account)[0].code == "too_many_messages"


def test_batch_of_2500_messages_is_accepted(client: Client, account: Account,
                                            write_key: str) -> None:
    messages = [{"type": "track", "event": "E", "userId": str(i)} for i in range(2500)]
    assert post(client, "/v1/batch", {"batch": messages}, write_key).status_code == 200
    assert len(stored(account)) == 2500


def test_missing_write_key_is_401_and_filed_under_no_account(client: Client,
                                                             account: Account) -> None:
    with nothing_stored():
        response = post(client, "/v1/track", track())
    assert response.status_code == 401
    assert response.json()["code"] == "missing_write_key"
    assert set(response.json()) == {"code", "message"}
    [failure] = failed(None)
    assert failure.code == "missing_write_key"
    assert failure.key_prefix == ""
    assert failure.remote_addr == "127.0.0.1"


def test_unknown_write_key_is_401_and_only_its_prefix_is_kept(client: Client,
                                                              account: Account) -> None:
    presented = "swk_" + "Z" * 43
    with nothing_stored():
        response = post(client, "/v1/batch", {"batch": [track()], "writeKey": presented})
    assert response.status_code == 401
    assert response.json()["code"] == "invalid_write_key"
    [failure] = failed(None)
    assert failure.key_prefix == presented[:12]
    assert presented not in failure.body
    assert presented[:12] in failure.body  # the body is kept, the key in it masked
    assert failed(account) == []


def test_a_short_unknown_key_is_never_kept_whole(client: Client, account: Account) -> None:
    with nothing_stored():
        response = post(client, "/v1/track", track(), "hunter2")
    assert response.status_code == 401
    assert failed(None)[0].key_prefix == "hun"


def test_write_key_of_a_disabled_account_is_403(client: Client, account: Account,
                                                write_key: str) -> None:
    account.enabled = False
    account.save()
    with nothing_stored():
        response = post(client, "/v1/batch", {"batch": [track()]}, write_key)
    assert response.status_code == 403
    assert response.json()["code"] == "account_disabled"
    [failure] = failed(account)
    assert failure.code == "account_disabled"
    assert failure.key_prefix == write_key[:12]


def test_revoked_write_key_is_401_and_filed_under_its_account(
        client: Client, account: Account) -> None:
    key, secret = make_write_key(account)
    access.revoke_write_key(key, actor=system_actor(account))
    with nothing_stored():
        response = post(client, "/v1/track", track(), secret)
    assert response.status_code == 401
    assert failed(account)[0].reason == "The write key has been revoked."


def test_no_user_or_anonymous_id_rejects_that_message_alone(
        client: Client, account: Account, write_key: str) -> None:
    response = post(client, "/v1/batch", {"batch": [
        {"type": "track", "event": "E", "messageId": "lost", "userId": None,
         "anonymousId": ""},
        track(messageId="kept"),
    ]}, write_key)
    assert response.status_code == 200
    assert response.json()["rejected"] == [{"position": 1, "code": "no_user_anon_id",
                                            "message": failed(account)[0].reason}]
    assert [row.message_id for row in stored(account)] == ["kept"]
    [failure] = failed(account)
    assert (failure.code, failure.message_id) == ("no_user_anon_id", "lost")
    assert json.loads(failure.body)["event"] == "E"


def test_single_message_without_ids_answers_400(client: Client, account: Account,
                                                write_key: str) -> None:
    with nothing_stored():
        response = post(client, "/v1/identify", {"traits": {"a": 1}}, write_key)
    assert response.status_code == 400
    assert response.json()["code"] == "no_user_anon_id"


def test_track_without_event_is_rejected(client: Client, account: Account,
                                         write_key: str) -> None:
    response = post(client, "/v1/batch", {"batch": [
        {"type": "track", "userId": "u-1", "messageId": "no-event"}, track(messageId="ok")]},
        write_key)
    assert response.status_code == 200
    assert [row.message_id for row in stored(account)] == ["ok"]
    assert failed(account)[0].code == "missing_event"
    with nothing_stored():
        single = post(client, "/v1/track", {"userId": "u-1", "event": ""}, write_key)
    assert single.status_code == 400
    assert single.json()["code"] == "missing_event"


def test_unknown_type_in_a_batch_is_rejected(client: Client, account: Account,
                                             write_key: str) -> None:
    post(client, "/v1/batch", {"batch": [{"type": "purchase", "userId": "u"}, "not an object"]},
         write_key)
    assert stored(account) == []
    assert [f.code for f in failed(account)] == ["invalid_type", "invalid_message"]


def test_a_timestamp_that_is_not_a_date_keeps_the_event_with_a_warning(
        client: Client, account: Account, write_key: str) -> None:
    before = timezone.now()
    assert post(client, "/v1/track", track(timestamp="yesterday-ish"),
                write_key).status_code == 200
    [row] = stored(account)
    assert row.event_at == row.received_at >= before
    assert row.warnings[0]["code"] == "invalid_timestamp"


def test_a_timestamp_over_a_day_ahead_keeps_the_event_with_a_warning(
        client: Client, account: Account, write_key: str) -> None:
    ahead = (timezone.now() + timedelta(days=2)).isoformat()
    assert post(client, "/v1/track", track(timestamp=ahead), write_key).status_code == 200
    [row] = stored(account)
    assert row.event_at == row.received_at
    assert row.warnings[0]["code"] == "future_timestamp"


def test_non_utf8_bytes_are_refused(client: Client, account: Account, write_key: str) -> None:
    with nothing_stored():
        response = post(client, "/v1/track", b'{"userId": "\xff\xfe", "event": "E"}', write_key)
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_encoding"
    assert failed(account)[0].code == "invalid_encoding"


def nested(levels: int) -> dict[str, Any]:
    """A message whose containers nest ``levels`` deep (the message itself is level 1)."""
    inner: dict[str, Any] = {}
    for _ in range(levels - 2):
        inner = {"n": inner}
    return track(properties=inner)


def test_json_nested_over_32_levels_is_rejected(client: Client, account: Account,
                                                write_key: str) -> None:
    response = post(client, "/v1/batch", {"batch": [
        {**nested(33), "messageId": "deep"}, {**nested(32), "messageId": "ok"}]}, write_key)
    assert response.status_code == 200
    assert [row.message_id for row in stored(account)] == ["ok"]
    assert [(f.code, f.message_id) for f in failed(account)] == [("too_deep", "deep")]


def test_json_nested_beyond_the_parser_is_invalid(client: Client, account: Account,
                                                  write_key: str) -> None:
    with nothing_stored():
        response = post(client, "/v1/track", b'{"a":' * 100_000, write_key)
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_json"


def test_gzip_bomb_is_refused(client: Client, account: Account, write_key: str) -> None:
    bomb = gzip.compress(b'{"batch": [' + b" " * (50 * 1024 * 1024) + b"]}", 9)
    assert len(bomb) < 100 * 1024
    with nothing_stored():
        response = post(client, "/v1/batch", bomb, write_key, HTTP_CONTENT_ENCODING="gzip")
    assert response.status_code == 400
    assert response.json()["code"] == "body_too_large"
    assert failed(account)[0].code == "body_too_large"


def test_invalid_gzip_is_refused(client: Client, account: Account, write_key: str) -> None:
    with nothing_stored():
        response = post(client, "/v1/batch", b"not gzip", write_key,
                        HTTP_CONTENT_ENCODING="gzip")
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_gzip"


def test_batch_that_is_not_a_list_is_refused(client: Client, account: Account,
                                             write_key: str) -> None:
    with nothing_stored():
        response = post(client, "/v1/batch", {"batch": {"type": "track"}}, write_key)
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_batch"


@pytest.mark.parametrize("path", ["/v1/batch", "/v1/t", "/beacon/v1/batch", "/sourceConfig/"])
def test_options_preflight_from_any_origin(client: Client, account: Account, path: str) -> None:
    with nothing_stored():
        response = client.options(
            path, HTTP_ORIGIN="https://shop.example.net",
            HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST",
            HTTP_ACCESS_CONTROL_REQUEST_HEADERS="authorization, content-type")
    assert response.status_code == 200
    assert response["Access-Control-Allow-Origin"] == "*"
    allowed = {h.strip().lower() for h in response["Access-Control-Allow-Headers"].split(",")}
    assert {"authorization", "content-type", "content-encoding"} <= allowed
    assert "POST" in response["Access-Control-Allow-Methods"]
    assert "Access-Control-Allow-Credentials" not in response
    assert FailedEvent.objects.count() == 0


def test_cross_origin_post_exposes_headers(client: Client, account: Account,
                                           write_key: str) -> None:
    response = post(client, "/v1/track", track(), write_key, HTTP_ORIGIN="https://a.example")
    assert response["Access-Control-Allow-Origin"] == "*"
    exposed = {h.strip().lower() for h in response["Access-Control-Expose-Headers"].split(",")}
    assert "retry-after" in exposed


def test_basic_auth_with_a_password_part_still_works(client: Client, account: Account,
                                                     write_key: str) -> None:
    header = "Basic " + base64.b64encode(f"{write_key}:ignored".encode()).decode()
    assert post(client, "/v1/track", track(), HTTP_AUTHORIZATION=header).status_code == 200


def test_other_accounts_see_nothing(client: Client, account: Account, write_key: str) -> None:
    other = make_account("Globex")
    post(client, "/v1/track", track(), write_key)
    assert stored(other) == []
    assert len(stored(account)) == 1


def test_a_number_too_large_for_a_float_is_refused_as_invalid_json(client, account, write_key):
    from profiles.models import FailedEvent, RawEvent

    body = ('{"type": "track", "event": "Big", "anonymousId": "a1", '
            '"properties": {"n": 1e400}}')
    response = client.post("/v1/track", body, content_type="application/json",
                           HTTP_AUTHORIZATION=basic_auth(write_key))

    assert response.status_code == 400
    assert response.json()["code"] == "invalid_json"
    assert not RawEvent.objects.for_account(account).exists()
    assert FailedEvent.objects.filter(account=account, code="invalid_json").exists()


def test_a_batch_whose_messages_name_two_accounts_keys_is_refused(
        client: Client, account: Account, write_key: str) -> None:
    other = make_account("Globex")
    other_key = make_write_key(other)[1]
    with nothing_stored():
        response = post(client, "/v1/batch", {"batch": [
            track(writeKey=write_key, messageId="a-1"),
            track(writeKey=other_key, messageId="b-1")]}, content_type="text/plain")
    assert response.status_code == 400
    assert response.json()["code"] == "mixed_write_keys"
    assert failed(account) == [] and failed(other) == []
    [refused] = failed()
    assert write_key not in refused.body and other_key not in refused.body
    # one key repeated in every message is one sender: stored as before
    assert post(client, "/v1/batch", {"batch": [track(writeKey=write_key, messageId="a-2"),
                                                track(writeKey=write_key, messageId="a-3")]},
                content_type="text/plain").status_code == 200
    assert len(stored(account)) == 2
