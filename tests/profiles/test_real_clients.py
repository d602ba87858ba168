"""Unmodified clients against a live Strata: segment-analytics-python, rudder-sdk-python and
the Lytics tag's wire format (real HTTP GETs and form POSTs), checked in the raw store."""

from __future__ import annotations

import gc
import re
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import rudderstack.analytics as rudder_analytics
from django.db import connection
from rudderstack.analytics import request as rudder_request
from segment.analytics import Client as SegmentClient
from segment.analytics import request as segment_request
from segment.analytics.request import APIError

from cdp_site.models import Account
from tests.profiles.conftest import failed, jstag_query, make_write_key, stored

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def clean_raw_store(account: Account) -> Iterator[None]:
    """The raw store is not flushed between transactional tests (Django does not manage the
    partitioned table): remove this test's rows. The clients' keep-alive sessions are closed
    so the live server's request threads end and give back their database connections."""
    yield
    # A client error's traceback keeps its connection open until the cycle is collected.
    gc.collect()
    segment_request._session.close()
    rudder_request._session.close()
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM profiles_rawevent WHERE account_id = %s", [account.pk])
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = "
                           "current_database() AND pid <> pg_backend_pid()")
            if cursor.fetchone()[0] == 0:
                break
            time.sleep(0.05)


def by_type(account: Account) -> dict[str, Any]:
    return {row.type: row for row in stored(account)}


def test_segment_analytics_python_identify_track_page(live_server: Any, account: Account,
                                                      clean_raw_store: None) -> None:
    _key, secret = make_write_key(account, stream="server")
    client = SegmentClient(secret, host=live_server.url, sync_mode=True)
    client.identify("user-1", {"email": "ada@example.com", "plan": "pro"})
    client.track("user-1", "Order Completed", {"total": 99.5, "currency": "EUR"},
                 message_id="order-1")
    client.page("user-1", "Docs", "Install", {"url": "https://example.com/docs"})
    client.track("user-1", "Order Completed", {"total": 99.5}, message_id="order-1")  # a retry

    rows = by_type(account)
    assert set(rows) == {"identify", "track", "page"}
    assert len(stored(account)) == 3  # the repeated message id is stored once
    identify, track, page = rows["identify"], rows["track"], rows["page"]
    assert identify.user_id == "user-1"
    assert identify.message["traits"] == {"email": "ada@example.com", "plan": "pro"}
    assert (track.event, track.message_id) == ("Order Completed", "order-1")
    assert track.message["properties"] == {"total": 99.5, "currency": "EUR"}
    assert page.message["name"] == "Install"
    assert page.message["category"] == "Docs"
    for row in (identify, track, page):
        assert row.stream == "server"
        assert row.source == "segment"
        assert row.sent_at is not None
        assert row.message["context"]["library"]["name"] == "analytics-python"
        assert "writeKey" not in row.message
        assert abs((row.received_at - row.event_at).total_seconds()) < 60


def test_segment_alias_links_the_previous_id_to_the_user_in_the_lytics_schema(
        live_server: Any, account: Account, clean_raw_store: None) -> None:
    """An anonymous visitor's page view, then the user's identify, each sent by
    segment-analytics-python; then the client's own alias message (previousId = the anonymous
    id, userId = the user id) POSTed to /v1/alias: processed with the installed Lytics schema,
    the two profiles are one, found by either id and by email."""
    from profiles.processing.identity import find_profile
    from profiles.processing.pipeline import process_pending
    from profiles.schema.lytics import install_lytics_schema
    from tests.profiles.conftest import basic_auth
    from tests.profiles.processing import live_profiles

    install_lytics_schema(account)
    _key, secret = make_write_key(account)
    client = SegmentClient(secret, host=live_server.url, sync_mode=True)
    client.page(anonymous_id="anon-1", name="Cuisine", properties={"taxonomy": "cuisine"})
    client.identify("user-42", {"email": "Ada@Example.com"})
    assert process_pending(account_id=account.pk) == 2
    assert len(live_profiles(account)) == 2
    anonymous = find_profile(account, "_uid", "anon-1")

    ok, alias = SegmentClient(secret, send=False).alias("anon-1", "user-42")
    assert ok and alias["type"] == "alias" and alias["anonymousId"] is None
    response = requests.post(f"{live_server.url}/v1/alias", json=alias, timeout=10,
                             headers={"Authorization": basic_auth(secret)})
    assert response.status_code == 200, response.text
    assert process_pending(account_id=account.pk) == 1

    [profile] = live_profiles(account)
    assert profile.pk == anonymous.pk  # the older profile survives
    for field, value in (("_uid", "anon-1"), ("user_id", "user-42"),
                         ("email", "ada@example.com")):
        assert find_profile(account, field, value) == profile
    assert profile.field_values["taxonomy"] == "cuisine"
    assert profile.field_values["user_id"] == "user-42"
    assert profile.field_values["email"] == "ada@example.com"
    assert profile.event_count == 3


def test_segment_analytics_python_batches_gzipped_in_the_background(
        live_server: Any, account: Account, clean_raw_store: None) -> None:
    _key, secret = make_write_key(account)
    errors: list[Exception] = []
    client = SegmentClient(secret, host=live_server.url, gzip=True, upload_interval=0.1,
                           on_error=lambda error, batch: errors.append(error))
    for n in range(25):
        client.track(anonymous_id=f"visitor-{n}", event="Viewed Item", properties={"n": n})
    client.flush()
    client.join()
    assert errors == []
    rows = stored(account)
    assert len(rows) == 25
    assert {row.anonymous_id for row in rows} == {f"visitor-{n}" for n in range(25)}


def test_segment_analytics_python_sees_a_refused_key(live_server: Any, account: Account,
                                                     clean_raw_store: None) -> None:
    client = SegmentClient("swk_not-a-real-key-at-all", host=live_server.url, sync_mode=True)
    with pytest.raises(APIError) as raised:
        client.track("user-1", "Anything")
    assert raised.value.status == 401
    assert raised.value.code == "invalid_write_key"
    assert stored(account) == []
    assert failed(None)[0].key_prefix == "swk_not-a-re"


@pytest.fixture
def rudder(live_server: Any, account: Account) -> Iterator[Any]:
    """rudderstack.analytics configured the documented way (module settings)."""
    _key, secret = make_write_key(account, stream="rudder")
    rudder_analytics.write_key = secret
    rudder_analytics.dataPlaneUrl = live_server.url
    rudder_analytics.sync_mode = True
    rudder_analytics.default_client = None
    yield rudder_analytics
    rudder_analytics.default_client = None
    rudder_analytics.write_key = None


def test_rudder_sdk_python_identify_track_page(rudder: Any, account: Account,
                                               clean_raw_store: None) -> None:
    rudder.identify("user-2", {"email": "grace@example.com"})
    rudder.track("user-2", "Clicked CTA", {"cta": "hero"})
    rudder.page("user-2", "Blog", "Post", {"path": "/blog/1"})
    rudder.flush()

    rows = by_type(account)
    assert set(rows) == {"identify", "track", "page"}
    # RudderStack puts identify traits in context.traits.
    assert rows["identify"].message["context"]["traits"] == {"email": "grace@example.com"}
    assert rows["track"].event == "Clicked CTA"
    assert rows["track"].message["properties"] == {"cta": "hero"}
    assert rows["page"].message["name"] == "Post"
    for row in rows.values():
        assert (row.stream, row.user_id) == ("rudder", "user-2")
        assert row.sent_at is not None


def test_rudder_source_config_and_beacon(live_server: Any, account: Account,
                                         clean_raw_store: None) -> None:
    key, secret = make_write_key(account, stream="browser")
    config = requests.get(f"{live_server.url}/sourceConfig/?writeKey={secret}", timeout=10)
    assert config.status_code == 200
    assert config.json()["source"]["id"] == str(key.pk)
    beacon = requests.post(
        f"{live_server.url}/beacon/v1/batch?writeKey={secret}",
        data='{"batch": [{"type": "track", "event": "Left", "anonymousId": "v-9", '
             '"messageId": "beacon-1"}], "sentAt": "2024-01-01T00:00:00Z"}',
        headers={"Content-Type": "text/plain;charset=UTF-8"}, timeout=10)
    assert beacon.status_code == 200
    [row] = stored(account)
    assert (row.message_id, row.stream, row.source) == ("beacon-1", "browser", "beacon")


def test_lytics_tag_format_over_http(live_server: Any, account: Account,
                                     clean_raw_store: None) -> None:
    session = requests.Session()
    base = live_server.url
    # The tag asks for a visitor id first (loadid), then sends hits carrying it as _uid.
    id_response = session.get(f"{base}/cid/{account.aid}?callback=u_42", timeout=10)
    assert id_response.status_code == 200
    uid = re.fullmatch(r'u_42\("([^"]+)"\);', id_response.text).group(1)
    assert session.cookies.get("seerid") == uid

    page_view = {"_e": "pv", "_ts": int(time.time() * 1000), "_v": "3.0.2", "_uid": uid,
                 "url": "shop.example/sale", "_tz": 1, "_ul": "de-DE", "_sz": "390x844",
                 "_mob": "t", "_device": "IOS", "_sesstart": "1", "utm_campaign": "spring",
                 "user": {"id": 22, "segment": "vip"}, "seen": ["a", "b"]}
    gif = session.get(f"{base}/c/{account.aid}/web?{jstag_query(page_view)}", timeout=10)
    assert gif.status_code == 200
    assert gif.headers["Content-Type"] == "image/gif"
    assert gif.content.startswith(b"GIF89a")

    # A long payload goes as the `_js` form field; this one relies on the seerid cookie.
    form = session.post(f"{base}/c/{account.aid}/web",
                        data={"_js": jstag_query({"_e": "read", "article": "x" * 3000})},
                        timeout=10)
    assert form.status_code == 200

    rows = stored(account)
    assert [(row.type, row.event) for row in rows] == [("page", ""), ("track", "read")]
    assert {row.anonymous_id for row in rows} == {uid}
    assert rows[0].message["user"] == {"id": "22", "segment": "vip"}
    assert rows[0].message["seen"] == ["a", "b"]
    assert rows[1].message["article"] == "x" * 3000
    assert all(row.stream == "web" for row in rows)

    unknown = session.get(f"{base}/c/nosuchaccount?_e=pv", timeout=10)
    assert unknown.status_code == 404
    assert unknown.json()["code"] == "unknown_account"
    session.close()
