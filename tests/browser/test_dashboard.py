"""The dashboard in a real browser: a member signs in and lands on it; the account summary,
processing lag (in the warning colour past a minute), pending events, the throughput chart of the
last hour and the worker's health are on screen, with links to the sections their roles open.

Screenshots land in test-artifacts/screenshots/.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from cdp_site.health import beat
from profiles.collection.messages import Failure
from profiles.collection.store import record_failures
from profiles.models import PendingEvent, ProcessingStat, StreamHourlyCount
from tests.conftest import PASSWORD, make_account, make_user
from tests.profiles.processing import identity_schema, run, send

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


def _busy_account() -> None:
    account = make_account("Acme Travel", slug="acme")
    make_user("dana", account, roles=["data_manager"])
    make_user("mo", account, roles=["marketer"])
    identity_schema(account)
    send(account, *({"_uid": f"c{i}", "email": f"p{i}@example.com", "page": "/"}
                    for i in range(40)))
    run(account)  # 40 profiles
    send(account, *({"_uid": f"late{i}"} for i in range(17)))
    PendingEvent.objects.filter(account_id=account.pk).update(
        received_at=timezone.now() - timedelta(seconds=95))
    now = timezone.now().astimezone(UTC).replace(second=0, microsecond=0)
    ProcessingStat.objects.filter(account=account).delete()
    ProcessingStat.objects.bulk_create([
        ProcessingStat(account=account, minute=now - timedelta(minutes=m),
                       events=int(400 + 250 * math.sin(m / 7) + (m * 37) % 90),
                       failed=1 if m % 17 == 0 else 0)
        for m in range(1, 60)
    ])
    hour = now.replace(minute=0)
    StreamHourlyCount.objects.bulk_create([
        StreamHourlyCount(account=account, stream="web", hour=hour - timedelta(hours=h),
                          events=900 + 40 * h) for h in range(24)
    ])
    record_failures([Failure("missing_event", "a track message needs an event name")] * 3,
                    account=account, stream="web", source="segment")
    beat()


def test_members_land_on_the_dashboard_with_lag_and_throughput(browser):
    _busy_account()
    page = browser.page

    browser.log_in("dana", PASSWORD)
    browser.goto("/")
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()
    expect(page.locator("nav.mainnav a").first).to_have_text("Dashboard")
    expect(page.get_by_test_id("lag-value")).to_have_text(re.compile(r"^\s*1 min \d+ s\s*$"))
    expect(page.get_by_test_id("lag")).to_have_class("figure is-warn")
    expect(page.get_by_test_id("pending-value")).to_have_text("17")
    expect(page.get_by_test_id("profiles")).to_have_text("40")
    expect(page.get_by_test_id("failed-24h")).to_have_text("3")
    expect(page.get_by_test_id("worker-status")).to_contain_text("Running")
    page.wait_for_function(
        "document.getElementById('throughput-chart').dataset.drawn === '1'")
    browser.shot("dashboard-data-manager")

    page.get_by_test_id("sections").get_by_role("link", name="Schema").click()
    expect(page.get_by_role("heading", name="Schema")).to_be_visible()

    page.context.clear_cookies()
    browser.log_in("mo", PASSWORD)
    browser.goto("/")
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()
    expect(page.get_by_test_id("pending-value")).to_have_text("17")
    expect(page.locator("[data-section-link='schema']")).to_have_count(0)
    browser.shot("dashboard-marketer")
