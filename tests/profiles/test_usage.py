"""Account usage: events per day and month for Admins, the monthly quota (429 from collect,
Admins told once), and the notices they see."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest
from rest_framework.test import APIClient

from cdp_site.models import Account
from profiles.collection import usage
from profiles.collection.messages import IncomingEvent, QuotaExceeded
from profiles.collection.store import accept
from profiles.models import AccountNotice, RawEvent, StreamHourlyCount
from tests.profiles.raw_events import run_aggregator, store, track

API = "/api/v1/usage"


@pytest.fixture(autouse=True)
def fresh_quota_cache() -> Iterator[None]:
    usage._cache.clear()
    yield
    usage._cache.clear()


def count(account: Account, hour: datetime, events: int, stream: str = "web") -> None:
    StreamHourlyCount.objects.create(account=account, stream=stream, hour=hour, events=events,
                                     last_message_at=hour)


def send(account: Account, message_id: str) -> object:
    event = IncomingEvent(message={"type": "track", "event": "x", "userId": "u"},
                          message_id=message_id, type="track", event="x", user_id="u")
    return accept(account, "web", [event], [], source="test", received_at=datetime.now(UTC))


def test_usage_per_day_and_month_with_the_quota(account: Account, other_account: Account,
                                                client_for_roles: Callable[..., APIClient]
                                                ) -> None:
    now = datetime.now(UTC)
    this_month = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    last_month = (this_month - timedelta(days=1)).replace(day=1)
    count(account, this_month + timedelta(hours=1), 30)
    count(account, this_month + timedelta(hours=2), 10, stream="app")
    count(account, last_month + timedelta(days=2, hours=5), 7)
    count(account, last_month - timedelta(days=40), 1000)  # before the months asked for
    count(other_account, this_month, 500)
    account.monthly_event_quota = 200
    account.save()

    body = client_for_roles("admin").get(API, {"months": 2}).json()

    assert body["quota"] == 200
    assert body["events_this_month"] == 40
    assert body["percent_used"] == 20.0
    assert body["months"] == [{"month": f"{last_month:%Y-%m}", "events": 7},
                              {"month": f"{this_month:%Y-%m}", "events": 40}]
    days = {row["day"]: row["events"] for row in body["days"]}
    assert days[str(this_month.date())] == 40
    assert days[str((last_month + timedelta(days=2)).date())] == 7
    assert len(days) == (now.date() - last_month.date()).days + 1
    assert sum(days.values()) == 47
    assert body["streams"] == [{"stream": "web", "events": 30}, {"stream": "app", "events": 10}]
    assert datetime.fromisoformat(body["resets_at"]) > now


def test_usage_without_a_quota(account: Account, client_for_roles: Callable[..., APIClient]
                               ) -> None:
    body = client_for_roles("admin").get(f"{API}/").json()
    assert (body["quota"], body["percent_used"], body["events_this_month"]) == (None, None, 0)
    assert len(body["months"]) == 3


def test_usage_is_for_admins_only(account: Account,
                                  client_for_roles: Callable[..., APIClient]) -> None:
    assert client_for_roles("data_manager").get(API).status_code == 403
    assert client_for_roles("marketer").get(API).status_code == 403
    bad = client_for_roles("admin").get(API, {"months": 99})
    assert bad.status_code == 400
    assert bad.json()["code"] == "invalid"


def test_usage_counts_come_from_the_aggregator(account: Account,
                                               client_for_roles: Callable[..., APIClient]
                                               ) -> None:
    store(account, [track()] * 4, received_at=datetime.now(UTC) - timedelta(seconds=1))
    run_aggregator()
    body = client_for_roles("admin").get(API).json()
    assert body["events_this_month"] == 4
    assert body["days"][-1] == {"day": str(datetime.now(UTC).date()), "events": 4}


def test_over_the_quota_collect_refuses_and_admins_are_told_once(account: Account) -> None:
    account.monthly_event_quota = 5
    account.save()
    send(account, "before")  # under the quota: stored
    count(account, datetime.now(UTC).replace(minute=0, second=0, microsecond=0), 5)
    usage._cache.clear()

    with pytest.raises(QuotaExceeded) as refused:
        send(account, "over-1")
    with pytest.raises(QuotaExceeded):
        send(account, "over-2")

    assert refused.value.retry_after > 0
    assert list(RawEvent.objects.for_account(account).values_list("message_id", flat=True)) == [
        "before"]
    notices = list(AccountNotice.objects.for_account(account))
    assert len(notices) == 1
    assert notices[0].kind.startswith("quota_reached:")
    assert "5 events" in notices[0].message


def test_the_quota_counts_what_the_aggregator_counted(account: Account) -> None:
    account.monthly_event_quota = 3
    account.save()
    store(account, [track()] * 3, received_at=datetime.now(UTC) - timedelta(minutes=1))
    send(account, "still-allowed")  # the aggregator has not counted them yet
    run_aggregator()
    usage._cache.clear()
    with pytest.raises(QuotaExceeded):
        send(account, "refused")


def test_notices_are_listed_and_resolved(account: Account, other_account: Account,
                                         client_for_roles: Callable[..., APIClient]) -> None:
    mine = AccountNotice.objects.create(account=account, kind="retention_dropped",
                                        message="dropped")
    theirs = AccountNotice.objects.create(account=other_account, kind="x", message="theirs")
    admin = client_for_roles("admin")

    assert [n["id"] for n in admin.get("/api/v1/notices/").json()["results"]] == [mine.pk]
    assert [n["id"] for n in admin.get(API).json()["notices"]] == [mine.pk]
    resolved = admin.post(f"/api/v1/notices/{mine.pk}/resolve/")
    assert resolved.status_code == 200
    assert resolved.json()["resolved_at"] is not None
    assert admin.get("/api/v1/notices/", {"resolved": "false"}).json()["results"] == []
    assert admin.get(API).json()["notices"] == []
    assert admin.post(f"/api/v1/notices/{theirs.pk}/resolve/").status_code == 404
    assert client_for_roles("data_manager").get("/api/v1/notices/").status_code == 403


def test_a_quota_notice_shows_only_while_it_holds(account: Account) -> None:
    """"Monthly quota reached" never sits beside "No limit", nor outlives its month or a
    raised quota (the notice stays in /api/v1/notices/ as history)."""
    now = datetime.now(UTC)
    count(account, now.replace(minute=0, second=0, microsecond=0), 5)
    current = AccountNotice.objects.create(account=account, kind=f"quota_reached:{now:%Y-%m}",
                                           message="The monthly quota of 5 events is used up")
    AccountNotice.objects.create(account=account, kind="quota_reached:2020-01", message="old")

    account.monthly_event_quota = 5
    assert [n.pk for n in usage.usage_report(account, now=now).notices] == [current.pk]
    account.monthly_event_quota = None  # lifted
    assert usage.usage_report(account, now=now).notices == []
    account.monthly_event_quota = 50  # raised
    assert usage.usage_report(account, now=now).notices == []
    assert AccountNotice.objects.for_account(account).count() == 2
