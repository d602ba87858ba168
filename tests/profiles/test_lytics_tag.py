"""The Lytics tag's collection format: /c/{aid}[/{stream}] (GET with a flattened query, or a
`_js` form POST), /cid/{aid} JSONP, and the bad inputs that must store nothing."""

from __future__ import annotations

import gzip
import json
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import pytest
from django.test import Client
from django.utils import timezone

from cdp_site.models import Account
from profiles.collection import lytics
from profiles.collection.views.tracking import PIXEL
from profiles.models import FailedEvent, StreamHourlyCount
from tests.profiles.conftest import failed, jstag_query, nothing_stored, stored

pytestmark = pytest.mark.django_db


def page_view(**extra: Any) -> dict[str, Any]:
    """A page view as jstag v3 builds it (the fields it adds, then the page's own data)."""
    return {
        "_e": "pv", "_ts": 1_714_557_600_000, "_v": "3.0.2", "_uid": "u_8123456789",
        "url": "shop.example/shoes?utm_source=news", "_ref": "news.example/today",
        "_tz": -5, "_ul": "en-US", "_sz": "1920x1080", "_nmob": "t", "_device": "desktop",
        "_sesstart": "1", "utm_source": "news", **extra,
    }


def test_page_view_is_stored_nested_and_answered_with_a_gif(client: Client,
                                                            account: Account) -> None:
    data = page_view(user={"id": 22, "plan": "pro", "vip": True},
                     tags=["sale", "shoes"], items=[{"sku": "A1", "qty": 2}, {"sku": "B2"}])
    response = client.get(f"/c/{account.aid}?{jstag_query(data)}")
    assert response.status_code == 200
    assert response["Content-Type"] == "image/gif"
    assert response.content == PIXEL
    assert "no-store" in response["Cache-Control"]
    [row] = stored(account)
    assert (row.stream, row.type, row.event, row.anonymous_id, row.source) == (
        "default", "page", "", "u_8123456789", "lytics_tag")
    assert row.write_key_id is None
    message = row.message
    assert message["user"] == {"id": "22", "plan": "pro", "vip": "true"}
    assert message["tags"] == ["sale", "shoes"]
    assert message["items"] == [{"sku": "A1", "qty": 2}, {"sku": "B2"}]
    assert message["url"] == "shop.example/shoes?utm_source=news"
    assert message["_tz"] == "-5"
    assert not any(k.endswith(("_len", "_json")) for k in message)
    # `_ts` is when the tag sent the hit: the event time is the received time.
    assert row.sent_at == datetime(2024, 5, 1, 10, tzinfo=UTC)
    assert row.event_at == row.received_at
    assert row.warnings is None


def test_stream_in_the_path(client: Client, account: Account) -> None:
    query = jstag_query({"_e": "signup", "_uid": "u_1", "email": "a@example.com"})
    assert client.get(f"/c/{account.aid}/web_events?{query}").status_code == 200
    [row] = stored(account)
    assert (row.stream, row.type, row.event) == ("web_events", "track", "signup")
    assert row.message["email"] == "a@example.com"


def test_data_without_an_event_is_a_plain_record(client: Client, account: Account) -> None:
    client.get(f"/c/{account.aid}?{jstag_query({'_uid': 'u_1', 'email': 'a@example.com'})}")
    [row] = stored(account)
    assert (row.type, row.event) == ("", "")


def test_seerid_cookie_is_the_visitor_when_the_query_has_no_uid(client: Client,
                                                                account: Account) -> None:
    client.cookies["seerid"] = "cookie-visitor-1"
    client.get(f"/c/{account.aid}?_e=pv&url=x")
    assert stored(account)[0].anonymous_id == "cookie-visitor-1"


def test_uid_in_the_query_wins_over_the_cookie(client: Client, account: Account) -> None:
    client.cookies["seerid"] = "cookie-visitor-1"
    client.get(f"/c/{account.aid}?_e=pv&_uid=query-visitor")
    assert stored(account)[0].anonymous_id == "query-visitor"


def test_user_id_is_read_from_user_id_fields(client: Client, account: Account) -> None:
    client.get(f"/c/{account.aid}?_uid=v&user_id=crm-7")
    assert stored(account)[0].user_id == "crm-7"


def test_js_form_post_carries_the_serialized_query(client: Client, account: Account) -> None:
    data = page_view(article={"body": "long " * 500, "topics": ["a", "b"]})
    response = client.post(f"/c/{account.aid}/web", data=urlencode({"_js": jstag_query(data)}),
                           content_type="application/x-www-form-urlencoded")
    assert response.status_code == 200
    assert response.json() == {"success": True}
    [row] = stored(account)
    assert row.stream == "web"
    assert row.message["article"] == {"body": "long " * 500, "topics": ["a", "b"]}
    assert row.type == "page"


def test_plain_form_post_without_js_field(client: Client, account: Account) -> None:
    response = client.post(f"/c/{account.aid}", data="_uid=v1&user.email=a%40example.com",
                           content_type="application/x-www-form-urlencoded")
    assert response.status_code == 200
    assert stored(account)[0].message == {"_uid": "v1", "user": {"email": "a@example.com"}}


def test_json_post_to_the_tag_path(client: Client, account: Account) -> None:
    response = client.post(f"/c/{account.aid}/app",
                           data=json.dumps([{"_uid": "v1", "event": "open"}, {"_uid": "v2"}]),
                           content_type="text/plain")
    assert response.status_code == 200
    assert [(row.anonymous_id, row.stream) for row in stored(account)] == [
        ("v1", "app"), ("v2", "app")]


def test_a_ts_that_is_not_a_time_keeps_the_event_with_a_warning(client: Client,
                                                                 account: Account) -> None:
    assert client.get(f"/c/{account.aid}?_uid=v&_ts=soon").status_code == 200
    [row] = stored(account)
    assert row.event_at == row.received_at
    assert row.warnings[0]["code"] == "invalid_timestamp"


def test_quota_exceeded_answers_429(client: Client, account: Account) -> None:
    account.monthly_event_quota = 1
    account.save()
    StreamHourlyCount.objects.create(account=account, stream="default", events=1,
                                     hour=timezone.now().replace(minute=0, second=0,
                                                                 microsecond=0))
    with nothing_stored():
        response = client.get(f"/c/{account.aid}?_uid=v")
    assert response.status_code == 429
    assert int(response["Retry-After"]) > 0


# ---- bad input ---------------------------------------------------------------------------

def test_unknown_account_id_is_404_and_kept(client: Client, account: Account) -> None:
    with nothing_stored():
        response = client.get("/c/nosuchaid?_e=pv&_uid=v")
    assert response.status_code == 404
    assert response.json()["code"] == "unknown_account"
    [failure] = failed(None)
    assert (failure.code, failure.source, failure.body) == (
        "unknown_account", "lytics_tag", "_e=pv&_uid=v")


def test_disabled_account_is_403_and_kept(client: Client, account: Account) -> None:
    account.enabled = False
    account.save()
    with nothing_stored():
        response = client.get(f"/c/{account.aid}/web?_e=pv&_uid=v")
    assert response.status_code == 403
    assert response.json() == {"code": "account_disabled",
                               "message": "The account is disabled."}
    [failure] = failed(account)
    assert (failure.code, failure.stream) == ("account_disabled", "web")


def test_non_utf8_percent_encoding_is_refused(client: Client, account: Account) -> None:
    with nothing_stored():
        response = client.get(f"/c/{account.aid}?_uid=v&name=%FF%FE")
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_encoding"
    assert failed(account)[0].code == "invalid_encoding"


def test_non_utf8_form_body_is_refused(client: Client, account: Account) -> None:
    with nothing_stored():
        response = client.post(f"/c/{account.aid}", data=b"_js=_uid%3Dv%26n%3D\xff",
                               content_type="application/x-www-form-urlencoded")
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_encoding"


def test_keys_nested_over_32_levels_are_refused(client: Client, account: Account) -> None:
    deep = ".".join(["k"] * 33)
    with nothing_stored():
        response = client.get(f"/c/{account.aid}?_uid=v&{deep}=1")
    assert response.status_code == 400
    assert response.json()["code"] == "too_deep"
    assert failed(account)[0].code == "too_deep"
    ok = ".".join(["k"] * 32)
    assert client.get(f"/c/{account.aid}?_uid=v&{ok}=1").status_code == 200


def test_array_json_nested_over_32_levels_is_refused(client: Client, account: Account) -> None:
    deep: Any = 1
    for _ in range(33):
        deep = [deep]
    with nothing_stored():
        response = client.get(f"/c/{account.aid}?{jstag_query({'_uid': 'v', 'a': deep})}")
    assert response.status_code == 400
    assert response.json()["code"] == "too_deep"


def test_message_over_32_kb_is_refused(client: Client, account: Account) -> None:
    query = jstag_query({"_uid": "v", "pad": "x" * (33 * 1024)})
    with nothing_stored():
        response = client.post(f"/c/{account.aid}", data=urlencode({"_js": query}),
                               content_type="application/x-www-form-urlencoded")
    assert response.status_code == 400
    assert response.json()["code"] == "message_too_large"
    assert failed(account)[0].code == "message_too_large"


def test_body_over_500_kb_is_refused(client: Client, account: Account) -> None:
    with nothing_stored():
        response = client.post(f"/c/{account.aid}", data="_js=" + "x" * (501 * 1024),
                               content_type="application/x-www-form-urlencoded")
    assert response.status_code == 400
    assert response.json()["code"] == "body_too_large"
    [failure] = failed(account)
    assert failure.code == "body_too_large"
    assert failure.body_truncated


def test_query_over_500_kb_is_refused(client: Client, account: Account) -> None:
    with nothing_stored():
        response = client.get(f"/c/{account.aid}?pad={'x' * (501 * 1024)}")
    assert response.status_code == 400
    assert response.json()["code"] == "body_too_large"
    assert failed(account)[0].code == "body_too_large"


def test_oversized_hit_for_an_unknown_account_is_404(client: Client, account: Account) -> None:
    with nothing_stored():
        response = client.post("/c/nosuchaid", data="_js=" + "x" * (501 * 1024),
                               content_type="application/x-www-form-urlencoded")
    assert response.status_code == 404
    assert failed(None)[0].code == "unknown_account"


def test_too_many_fields_are_refused(client: Client, account: Account) -> None:
    query = "&".join(f"f{i}=1" for i in range(lytics.MAX_FIELDS + 1))
    with nothing_stored():
        response = client.get(f"/c/{account.aid}?{query}")
    assert response.status_code == 400
    assert response.json()["code"] == "too_many_fields"


def test_invalid_json_post_is_refused(client: Client, account: Account) -> None:
    with nothing_stored():
        response = client.post(f"/c/{account.aid}", data=b"[{", content_type="application/json")
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_json"
    assert failed(account)[0].body == "[{"


def test_gzip_bomb_post_is_refused(client: Client, account: Account) -> None:
    bomb = gzip.compress(b"_js=" + b"a" * (40 * 1024 * 1024), 9)
    with nothing_stored():
        response = client.post(f"/c/{account.aid}", data=bomb, HTTP_CONTENT_ENCODING="gzip",
                               content_type="application/x-www-form-urlencoded")
    assert response.status_code == 400
    assert response.json()["code"] == "body_too_large"


def test_stream_name_over_100_characters_is_refused(client: Client, account: Account) -> None:
    with nothing_stored():
        response = client.get(f"/c/{account.aid}/{'s' * 101}?_uid=v")
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_stream"


@pytest.mark.parametrize("path", ["/c/{aid}", "/c/{aid}/web", "/cid/{aid}"])
def test_options_preflight_from_any_origin(client: Client, account: Account, path: str) -> None:
    with nothing_stored():
        response = client.options(path.format(aid=account.aid), HTTP_ORIGIN="https://x.example",
                                  HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST",
                                  HTTP_ACCESS_CONTROL_REQUEST_HEADERS="content-type")
    assert response.status_code == 200
    assert response["Access-Control-Allow-Origin"] == "*"
    allowed = {h.strip().lower() for h in response["Access-Control-Allow-Headers"].split(",")}
    assert {"authorization", "content-type"} <= allowed
    assert FailedEvent.objects.count() == 0


# ---- /cid/: the visitor id ---------------------------------------------------------------

def test_cid_mints_a_visitor_id_and_sets_the_cookie(client: Client, account: Account) -> None:
    response = client.get(f"/cid/{account.aid}?callback=u_123456")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/javascript")
    assert "no-store" in response["Cache-Control"]
    uid = response.cookies["seerid"].value
    assert lytics.VISITOR_ID.fullmatch(uid)
    assert response.content.decode() == f'u_123456("{uid}");'
    assert int(response.cookies["seerid"]["max-age"]) > 30 * 24 * 3600
    # The next call gets the same id back from the cookie.
    again = client.get(f"/cid/{account.aid}?callback=jstag.cb")
    assert again.content.decode() == f'jstag.cb("{uid}");'
    assert stored(account) == []


def test_cid_answers_the_cookies_visitor_id(client: Client, account: Account) -> None:
    client.cookies["seerid"] = "known-visitor"
    response = client.get(f"/cid/{account.aid}")
    assert response.json() == {"_uid": "known-visitor"}


def test_cid_refuses_a_callback_that_is_not_a_name(client: Client, account: Account) -> None:
    response = client.get(f"/cid/{account.aid}?callback=alert(1)//")
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_callback"


def test_cid_unknown_and_disabled_accounts(client: Client, account: Account) -> None:
    assert client.get("/cid/nosuchaid?callback=f").status_code == 404
    account.enabled = False
    account.save()
    assert client.get(f"/cid/{account.aid}?callback=f").status_code == 403


# ---- the parser on its own ---------------------------------------------------------------

def test_unflatten_keeps_arrays_from_json_and_skips_their_element_copies() -> None:
    data = {"a": {"b": ["x y", "z=w"], "c": [{"d": [1, 2]}], "g": [[1, [2]], [3]]}, "e": "f"}
    warnings: list[dict[str, Any]] = []
    assert lytics.unflatten(lytics.parse_query(jstag_query(data)), warnings) == data
    assert warnings == []


def test_unflatten_an_ampersand_in_an_array_element_leaves_jstags_stray_key() -> None:
    # jstag writes array elements unencoded after the exact `_json` copy, so "z&w" also
    # yields a stray key "w"; the array itself is right.
    data = lytics.unflatten(lytics.parse_query(jstag_query({"b": ["z&w"]})), [])
    assert data == {"b": ["z&w"], "w": ""}


def test_unflatten_conflicting_keys_keep_the_object_with_a_warning() -> None:
    warnings: list[dict[str, Any]] = []
    assert lytics.unflatten([("user.id", "1"), ("user", "bob")], warnings) == {
        "user": {"id": "1"}}
    assert warnings[0]["code"] == "conflicting_key"


def test_tag_message_uses_receive_time_and_ts_as_sent_time() -> None:
    now = timezone.now()
    sent = int(time.time() * 1000) - 5000
    event = lytics.tag_message([("_uid", "v"), ("_ts", str(sent))], now)
    assert isinstance(event, lytics.IncomingEvent)
    assert event.event_at == now
    assert event.sent_at is not None
    assert abs(event.sent_at.timestamp() * 1000 - sent) < 1


def test_jsonp_only_accepts_names() -> None:
    assert lytics.jsonp("a.b_c$1", "id") == 'a.b_c$1("id");'
    for bad in ("", "1a", "a;b", "a(b)", "a..b", "x" * 101):
        assert lytics.jsonp(bad, "id") is None
