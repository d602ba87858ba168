"""The dashboard (issue 4, item 6: lag and throughput visible): every role sees it, `/` opens
it, its figures (and the API's) are right for pending events and processed stats."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from cdp_site.health import PROCESSOR_HEARTBEAT, beat
from cdp_site.models import Account
from cdp_site.roles import ROLES
from profiles.collection.messages import Failure
from profiles.collection.store import record_failures
from profiles.explorer import dashboard as board
from profiles.models import ProcessingStat, StreamHourlyCount
from tests.conftest import make_token, make_user, token_client
from tests.profiles.processing import identity_schema, run, send


def signed_in(account: Account, *roles: str) -> Client:
    client = Client()
    client.force_login(make_user("_".join(roles), account, roles))
    return client


def _minute(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(second=0, microsecond=0)


@pytest.mark.parametrize("role", [code for code, _name, _abbr in ROLES])
def test_every_role_sees_the_dashboard_and_lands_on_it(account: Account, role: str) -> None:
    client = signed_in(account, role)
    assert client.get("/")["Location"] == "/dashboard/"
    response = client.get("/dashboard/")
    assert response.status_code == 200
    html = response.content.decode()
    assert 'data-testid="processing"' in html and 'data-section="dashboard"' in html
    assert 'aria-current="page">Dashboard' in html  # first in the nav, and current
    # links only to the sections the role opens
    assert ('data-section-link="schema"' in html) == (role in {"admin", "data_manager"})
    assert ('data-section-link="profiles"' in html) == (
        role in {"admin", "data_manager", "user_search"})


def test_visitors_sign_in_first(db: Any) -> None:
    assert Client().get("/dashboard/")["Location"] == "/admin/login/?next=/dashboard/"


def test_lag_pending_and_throughput_for_pending_events_and_processed_stats(
        account: Account) -> None:
    identity_schema(account)
    send(account, {"_uid": "a"}, {"_uid": "b"}, {"_uid": "c"})
    now = timezone.now()
    minute = _minute(now)
    ProcessingStat.objects.create(account=account, minute=minute - timedelta(minutes=2),
                                  events=90, failed=1)
    ProcessingStat.objects.create(account=account, minute=minute - timedelta(minutes=30),
                                  events=30)
    ProcessingStat.objects.create(account=account, minute=minute - timedelta(minutes=61),
                                  events=1000)  # older than the hour: not counted

    figures = board.dashboard(account, now=now + timedelta(seconds=95))

    assert figures.processing.pending == 3
    assert 95 <= figures.processing.lag_seconds < 110
    assert figures.lag_warning  # past 60 s
    assert figures.events_last_hour == 120
    assert figures.events_per_minute_hour == pytest.approx(2.0)
    assert len(figures.throughput) == 60
    assert dict(figures.throughput)[minute - timedelta(minutes=2)] == 90
    assert figures.throughput[-1][0] == _minute(now + timedelta(seconds=95))

    run(account)
    after = board.dashboard(account)
    assert (after.processing.pending, after.processing.lag_seconds) == (0, 0.0)
    assert not after.lag_warning
    assert after.profiles == 3
    assert after.events_last_hour == 123  # the run's three events are counted too


def test_the_page_shows_the_figures_with_a_warning_past_a_minute(
        account: Account, monkeypatch: pytest.MonkeyPatch) -> None:
    identity_schema(account)
    send(account, {"_uid": "a"})
    from profiles.models import PendingEvent

    now = timezone.now()  # the page reads the clock once more: frozen, so the lag is exact
    PendingEvent.objects.filter(account_id=account.pk).update(
        received_at=now - timedelta(minutes=3, seconds=5))
    StreamHourlyCount.objects.create(account=account, stream="web", events=41,
                                     hour=timezone.now().replace(minute=0, second=0,
                                                                 microsecond=0))
    record_failures([Failure("missing_event", "a track message needs an event name")],
                    account=account, stream="web", source="segment")
    beat()

    client = signed_in(account, "observer")
    monkeypatch.setattr(timezone, "now", lambda: now)
    html = client.get("/dashboard/").content.decode()

    assert 'class="figure is-warn" data-testid="lag"' in html
    assert 'data-testid="lag-value">3 min 5 s<' in html
    assert 'data-testid="pending-value">1<' in html
    assert 'data-testid="events-24h">41<' in html
    assert 'data-testid="failed-24h">1<' in html
    assert "Running" in html  # the worker's heartbeat is fresh
    assert 'id="throughput-data"' in html


def test_human_durations() -> None:
    assert [board.human_duration(s) for s in (0, 42.4, 60, 185, 7800, 3 * 86400 + 4 * 3600)] == [
        "0 s", "42 s", "1 min", "3 min 5 s", "2 h 10 min", "3 d 4 h"]


def test_the_dashboard_api_carries_the_processing_figures(account: Account) -> None:
    identity_schema(account)
    send(account, {"_uid": "a"}, {"_uid": "b"})
    ProcessingStat.objects.create(account=account, minute=_minute(timezone.now()), events=12)
    _token, secret = make_token(account, ["observer"])

    body = token_client(secret).get("/api/v1/dashboard/").json()

    assert body["account"] == account.name and "members" in body  # what it said before
    processing = body["processing"]
    assert processing["pending"] == 2
    assert processing["lag_seconds"] >= 0 and processing["oldest_pending_at"]
    assert processing["events_last_hour"] == 12
    assert processing["events_per_minute"] == pytest.approx(0.2)
    assert len(processing["throughput"]) == 60 and processing["throughput"][-1]["events"] == 12
    assert processing["worker"]["status"] in {"ok", "stale", "unknown"}
    assert body["profiles"] == 0 and body["streams"] >= 1


def test_the_worker_card_shows_the_processor_and_serves_restarts(
        account: Account, settings: Any, tmp_path: Any) -> None:
    beat(PROCESSOR_HEARTBEAT)
    status = tmp_path / "serve.json"
    status.write_text(json.dumps({"status": "running", "children": {
        "web": {"status": "running", "pid": 10, "restarts": 0, "last_exit_code": None},
        "processor": {"status": "running", "pid": 12, "restarts": 1, "last_exit_code": -9}}}))
    settings.STRATA_SERVE_STATUS = str(status)
    page = signed_in(account, "admin").get("/dashboard/").content.decode()
    assert "Event processor: running" in page
    assert "processor: running, restarted 1 time (last exit -9)" in page
    health = Client().get("/health/").json()
    assert health["processor"]["status"] == "ok"
    assert health["processes"]["processor"]["restarts"] == 1


def test_received_and_processed_are_shown_over_the_same_windows(account: Account) -> None:
    """Backdated events (an import, the demo's week of traffic) are processed now but were
    received in their own hours: each window shows both figures, so they never read as a
    contradiction."""
    now = datetime(2026, 11, 20, 12, 30, tzinfo=UTC)
    this_hour = now.replace(minute=0)
    StreamHourlyCount.objects.create(account=account, stream="web", hour=this_hour, events=40)
    StreamHourlyCount.objects.create(account=account, stream="web",
                                     hour=this_hour - timedelta(hours=3), events=60)
    StreamHourlyCount.objects.create(account=account, stream="web",
                                     hour=this_hour - timedelta(days=5), events=5000)
    for minutes_ago, events in ((5, 3000), (50, 2000), (300, 700)):
        ProcessingStat.objects.create(account=account, minute=_minute(now) - timedelta(
            minutes=minutes_ago), events=events)

    figures = board.dashboard(account, now=now)

    assert (figures.events_24h, figures.processed_24h) == (100, 5700)
    assert (figures.received_last_hour, figures.events_last_hour) == (40, 5000)
    assert figures.received_last_hour_since == datetime(2026, 11, 20, 11, 0, tzinfo=UTC)
    assert figures.received_since == datetime(2026, 11, 19, 12, 0, tzinfo=UTC)
