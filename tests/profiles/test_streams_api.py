"""The stream explorer API: streams, raw keys, ingress, latest events, failed events,
violations; permission feature `schema` (Admins and Data Managers), other accounts' data 404."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any

import pytest
from rest_framework.test import APIClient

from cdp_site.models import Account
from profiles.collection.messages import Failure
from profiles.collection.store import record_failures
from profiles.models import RawKey, Stream, TrackingPlan
from tests.conftest import make_token, make_write_key, token_client
from tests.profiles.raw_events import ago, run_aggregator, store, track

API = "/api/v1"


@pytest.fixture
def manager(client_for_roles: Callable[..., APIClient]) -> APIClient:
    return client_for_roles("data_manager")


def results(response: Any) -> list[dict[str, Any]]:
    assert response.status_code == 200, response.content
    body = response.json()
    return body["results"] if isinstance(body, dict) and "results" in body else body


def test_streams_list_last_message_and_events_in_the_last_24_hours(
        account: Account, manager: APIClient) -> None:
    store(account, [track()] * 3, received_at=ago(hours=30))
    store(account, [track()] * 2, received_at=ago(minutes=20))
    store(account, [track()], stream="app", received_at=ago(hours=2))
    Stream.objects.create(account=account, name="crm_users")
    run_aggregator()

    rows = results(manager.get(f"{API}/streams/"))

    assert [(r["name"], r["events_24h"]) for r in rows] == [
        ("app", 1), ("crm_users", 0), ("web", 2)
    ]
    web = rows[2]
    assert datetime.fromisoformat(web["last_message_at"]) > ago(minutes=21)
    assert rows[1]["last_message_at"] is None
    detail = manager.get(f"{API}/streams/web/")
    assert detail.status_code == 200
    assert detail.json()["events_24h"] == 2


def test_a_data_manager_creates_a_stream(account: Account, manager: APIClient) -> None:
    response = manager.post(f"{API}/streams/", {"name": "crm_users", "description": "CRM"},
                            format="json")
    assert response.status_code == 201, response.content
    assert response.json()["name"] == "crm_users"
    assert response.json()["events_24h"] == 0
    again = manager.post(f"{API}/streams/", {"name": "crm_users"}, format="json")
    assert again.status_code == 409
    assert again.json()["code"] == "stream_exists"
    bad = manager.post(f"{API}/streams/", {"name": "no spaces"}, format="json")
    assert bad.status_code == 400
    assert bad.json()["code"] == "invalid"


def test_a_marketer_token_is_refused(account: Account,
                                     client_for_roles: Callable[..., APIClient]) -> None:
    store(account, [track()])
    marketer = client_for_roles("marketer")
    for path in ("/streams/", "/streams/web/", "/streams/web/keys/", "/streams/web/ingress",
                 "/streams/web/events", "/failed-events/", "/tracking-plans/"):
        assert marketer.get(f"{API}{path}").status_code == 403, path
    assert marketer.post(f"{API}/streams/", {"name": "x"}, format="json").status_code == 403
    assert client_for_roles("admin").get(f"{API}/streams/").status_code == 200


def test_other_accounts_streams_are_not_found(account: Account, other_account: Account,
                                              manager: APIClient) -> None:
    store(other_account, [track(secret="yes")])
    store(other_account, [track()], stream="shared")
    store(account, [track()], stream="shared")
    run_aggregator()
    their_key = RawKey.objects.for_account(other_account).get(stream="web",
                                                              key="properties.secret")
    for path in ("/streams/web/", "/streams/web/keys/", "/streams/web/ingress",
                 "/streams/web/events", "/streams/web/violations",
                 f"/streams/shared/keys/{their_key.pk}/"):
        response = manager.get(f"{API}{path}")
        assert response.status_code == 404, path
        assert response.json()["code"] == "not_found"
    assert manager.delete(f"{API}/streams/web/").status_code == 404
    keys = results(manager.get(f"{API}/streams/shared/keys/"))
    assert "properties.secret" not in {k["key"] for k in keys}
    assert Stream.objects.for_account(other_account).filter(name="web").exists()


def test_deleting_a_stream_removes_its_keys_and_plans(account: Account,
                                                      manager: APIClient) -> None:
    store(account, [track()], stream="old")
    run_aggregator()
    TrackingPlan.objects.create(account=account, stream="old", event="x", schema={})
    Stream.objects.create(account=account, name="web")
    make_write_key(account, stream="web")

    assert manager.delete(f"{API}/streams/old/").status_code == 204

    assert not Stream.objects.for_account(account).filter(name="old").exists()
    assert not RawKey.objects.for_account(account).filter(stream="old").exists()
    assert not TrackingPlan.objects.for_account(account).exists()
    in_use = manager.delete(f"{API}/streams/web/")
    assert in_use.status_code == 409
    assert in_use.json()["code"] == "stream_in_use"
    assert "Website" in in_use.json()["message"]


def test_raw_keys_search_filters_and_hiding(account: Account, manager: APIClient) -> None:
    store(account, [track(plan="pro", n=i) for i in range(20)])
    store(account, [track(coupon="SAVE")])  # 1 of 21 events: uncommon
    run_aggregator()
    RawKey.objects.for_account(account).filter(key="properties.plan").update(
        times_used_by_mappings=2)

    keys = results(manager.get(f"{API}/streams/web/keys/"))
    by_key = {k["key"]: k for k in keys}
    assert [k["key"] for k in keys] == sorted(by_key)
    plan = by_key["properties.plan"]
    assert (plan["predicted_type"], plan["times_seen"], plan["unique_values"]) == (
        "string", 20, 1)
    assert plan["common"] is True and plan["share"] == round(20 / 21, 4)
    assert by_key["properties.n"]["unique_values"] == 20
    assert "samples" not in plan

    def keys_for(query: str) -> list[str]:
        return [k["key"] for k in results(manager.get(f"{API}/streams/web/keys/?{query}"))]

    assert keys_for("q=PROPERTIES.") == ["properties.coupon", "properties.n", "properties.plan"]
    assert keys_for("used=true") == ["properties.plan"]
    assert "properties.plan" not in keys_for("used=false")
    assert keys_for("common=false") == ["properties.coupon"]
    assert "properties.coupon" not in keys_for("common=true")
    assert keys_for("type=int") == ["properties.n"]
    assert keys_for("q=properties&ordering=-times_seen")[-1] == "properties.coupon"

    coupon_id = by_key["properties.coupon"]["id"]
    detail = manager.get(f"{API}/streams/web/keys/{coupon_id}/")
    assert detail.json()["samples"] == ["SAVE"]
    hidden = manager.patch(f"{API}/streams/web/keys/{coupon_id}/", {"hidden": True},
                           format="json")
    assert hidden.status_code == 200, hidden.content
    assert hidden.json()["hidden"] is True
    assert keys_for("hidden=true") == ["properties.coupon"]
    assert "properties.coupon" not in keys_for("hidden=false")
    bad = manager.patch(f"{API}/streams/web/keys/{coupon_id}/", {"hidden": "maybe"},
                        format="json")
    assert bad.status_code == 400


def test_ingress_hourly_series_is_zero_filled(account: Account, manager: APIClient) -> None:
    now = datetime.now(UTC)
    hour = now.replace(minute=0, second=0, microsecond=0)
    store(account, [track()] * 4, received_at=max(hour - timedelta(hours=3), ago(hours=3)))
    store(account, [track()], received_at=ago(minutes=1))
    run_aggregator()

    body = manager.get(f"{API}/streams/web/ingress?period=24h").json()

    assert (body["period"], body["bucket"], body["total"]) == ("24h", "hour", 5)
    starts = [datetime.fromisoformat(b["start"]) for b in body["buckets"]]
    assert len(starts) in (24, 25)
    assert all(b - a == timedelta(hours=1) for a, b in pairwise(starts))
    assert starts[-1] == hour
    counts = {datetime.fromisoformat(b["start"]): b["events"] for b in body["buckets"]}
    assert counts[hour - timedelta(hours=3)] == 4
    assert sum(counts.values()) == 5


def test_ingress_days_and_weeks_in_the_accounts_time_zone(account: Account,
                                                          manager: APIClient) -> None:
    account.timezone = "America/New_York"
    account.save()
    store(account, [track()] * 2, received_at=ago(days=3))
    run_aggregator()

    days = manager.get(f"{API}/streams/web/ingress/?period=7d").json()
    assert (days["bucket"], days["timezone"], days["total"]) == ("day", "America/New_York", 2)
    assert len(days["buckets"]) == 8
    first = datetime.fromisoformat(days["buckets"][0]["start"])
    assert (first.hour, first.minute) == (0, 0)
    assert first.utcoffset() in (timedelta(hours=-5), timedelta(hours=-4))

    weeks = manager.get(f"{API}/streams/web/ingress?period=90d&bucket=week").json()
    assert weeks["total"] == 2
    assert all(datetime.fromisoformat(b["start"]).weekday() == 0 for b in weeks["buckets"])

    bad = manager.get(f"{API}/streams/web/ingress?period=1y")
    assert bad.status_code == 400
    assert bad.json()["code"] == "invalid_period"
    assert manager.get(f"{API}/streams/web/ingress?bucket=month").json()["code"] == (
        "invalid_bucket")


def test_latest_events_newest_first_and_after_id(account: Account, manager: APIClient) -> None:
    store(account, [track(n=n) for n in range(3)])
    store(account, [track()], stream="app")

    body = manager.get(f"{API}/streams/web/events").json()
    assert [e["message"]["properties"]["n"] for e in body["results"]] == [2, 1, 0]
    assert body["last_id"] == body["results"][0]["id"]
    assert set(body["results"][0]) >= {"id", "message_id", "type", "event", "received_at",
                                       "message", "warnings"}

    polled = manager.get(f"{API}/streams/web/events?after_id={body['last_id']}").json()
    assert polled == {"results": [], "last_id": body["last_id"]}
    store(account, [track(n=3)])
    polled = manager.get(f"{API}/streams/web/events?after_id={body['last_id']}").json()
    assert [e["message"]["properties"]["n"] for e in polled["results"]] == [3]
    assert len(manager.get(f"{API}/streams/web/events?limit=2").json()["results"]) == 2
    assert manager.get(f"{API}/streams/web/events?after_id=x").status_code == 400


def test_failed_events_list_filters_and_detail(account: Account, other_account: Account,
                                               manager: APIClient) -> None:
    record_failures([Failure("invalid_json", "Not JSON", body="{" * 500)], account=account,
                    stream="web", source="segment", received_at=ago(hours=2))
    record_failures([Failure("missing_id", "No userId or anonymousId", body="{}")],
                    account=account, stream="app", source="segment", received_at=ago(minutes=5))
    record_failures([Failure("invalid_json", "theirs")], account=other_account, stream="web",
                    source="segment")

    rows = results(manager.get(f"{API}/failed-events/"))
    assert [r["code"] for r in rows] == ["missing_id", "invalid_json"]
    assert "body" not in rows[0] and len(rows[1]["body_preview"]) == 300
    assert [r["code"] for r in results(manager.get(f"{API}/failed-events/?stream=web"))] == [
        "invalid_json"]
    assert [r["code"] for r in results(manager.get(f"{API}/failed-events/?code=missing_id"))] == [
        "missing_id"]
    since = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    recent = manager.get(f"{API}/failed-events/", {"since": since})
    assert [r["code"] for r in results(recent)] == ["missing_id"]

    detail = manager.get(f"{API}/failed-events/{rows[1]['id']}/").json()
    assert detail["body"] == "{" * 500
    assert detail["reason"] == "Not JSON"
    theirs = other_account_failed_id(other_account)
    assert manager.get(f"{API}/failed-events/{theirs}/").status_code == 404


def other_account_failed_id(account: Account) -> int:
    from profiles.models import FailedEvent

    return FailedEvent.objects.for_account(account).get().pk


def test_violation_counts_per_event(account: Account, manager: APIClient) -> None:
    warning = [{"code": "tracking_plan", "violations": []}]
    store(account, [track("Signed Up")] * 3, warnings=warning)
    store(account, [track("Order Completed")], warnings=warning)
    record_failures([Failure("tracking_plan", "Violates the tracking plan for 'Order "
                             "Completed': x", body='{"event": "Order Completed"}')],
                    account=account, stream="web", source="segment", received_at=ago(minutes=1))
    run_aggregator()

    body = manager.get(f"{API}/streams/web/violations").json()

    assert body == {"stream": "web", "days": 30, "events": [
        {"event": "Signed Up", "violations": 3, "blocked": 0},
        {"event": "Order Completed", "violations": 1, "blocked": 1},
    ]}


def test_admin_token_reads_everything(account: Account) -> None:
    _token, secret = make_token(account, ["admin"])
    client = token_client(secret)
    store(account, [track()])
    assert client.get(f"{API}/streams/web/keys").status_code == 200
