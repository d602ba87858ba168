"""Scheduled work: time-relative audiences recomputed as time passes (``now`` passed in, not
slept), hourly size points, the schedules themselves, and the command."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django_q.models import Schedule

from audiences import editing, membership
from audiences.models import Audience, AudienceSize
from cdp_site.models import Account
from tests.audiences.live import changes, lytics_account, members, process, profile_of

pytestmark = pytest.mark.django_db


@pytest.fixture
def live(account: Account) -> Account:
    return lytics_account(account)


def make(account: Account, slug: str, text: str) -> Audience:
    created = editing.create_audience(account, None, name=slug, slug=slug, text=text,
                                      compute=False)
    membership.compute_audiences(account.pk, [created.pk])
    return Audience.objects.get(pk=created.pk)


def test_people_leave_a_7_day_window_when_the_week_passes(live: Account) -> None:
    visited = make(live, "visited-7d", "FILTER EVENT page WITHIN 7")
    loyal = make(live, "cuisine-lovers", 'FILTER AND(INCLUDE visited-7d, taxonomy = "cuisine")')
    crm = make(live, "gold", 'FILTER loyalty_tier = "Gold"')
    assert visited.time_relative and loyal.depends_on == ["audience:visited-7d",
                                                          "field:taxonomy"]
    assert not loyal.time_relative and not crm.time_relative
    seen = datetime.now(UTC) - timedelta(days=2)
    process(live, {"type": "page", "anonymousId": "w1", "properties": {"taxonomy": "cuisine"}},
            at=seen)
    visitor = profile_of(live, "_uid", "w1")
    assert members(visited) == members(loyal) == {visitor.pk}

    six_days = membership.recompute_time_relative(now=seen + timedelta(days=6, hours=23))
    assert {r.slug for r in six_days} == {"visited-7d", "cuisine-lovers"}  # not "gold"
    assert members(visited) == {visitor.pk}

    membership.recompute_time_relative(now=seen + timedelta(days=7, minutes=1))
    assert members(visited) == members(loyal) == set()
    assert changes(visited)[-1] == (visitor.pk, "exit", "schedule")
    assert changes(loyal)[-1] == (visitor.pk, "exit", "schedule")
    assert Audience.objects.get(pk=visited.pk).size == 0


def test_hourly_size_points_follow_real_time_changes(live: Account) -> None:
    gold = make(live, "gold", 'FILTER loyalty_tier = "Gold"')
    process(live, {"origin": {"email": "a@x.com"}, "response": {"loyalty_tier": "Gold"}},
            stream="crm_users")
    hour = datetime(2030, 1, 1, 10, tzinfo=UTC)
    assert membership.record_sizes(now=hour) == 1
    points = list(AudienceSize.objects.filter(audience=gold).order_by("at")
                  .values_list("at", "size"))
    assert points[-1] == (hour, 1)
    assert points[0][1] == 0  # the first computation, before the CRM record
    assert [p["size"] for p in membership.size_history(gold)] == [0, 1]


def test_the_schedules_exist() -> None:
    recompute = Schedule.objects.get(name="audiences.recompute_time_relative")
    assert (recompute.func, recompute.schedule_type, recompute.minutes) == (
        "audiences.tasks.recompute_time_relative", Schedule.MINUTES, 15)
    sizes = Schedule.objects.get(name="audiences.record_sizes")
    assert (sizes.func, sizes.schedule_type) == ("audiences.tasks.record_sizes",
                                                 Schedule.HOURLY)


def test_the_command_computes_on_demand(live: Account) -> None:
    created = editing.create_audience(live, None, name="Gold", text='loyalty_tier = "Gold"',
                                      compute=False)
    process(live, {"origin": {"email": "a@x.com"}, "response": {"loyalty_tier": "Gold"}},
            stream="crm_users")
    out = StringIO()
    call_command("compute_audiences", "--account", live.slug, "--sizes", stdout=out)
    # real time already put the member in; the computation confirms it
    assert f"{live.slug}/gold: 1 members (+0 -0)" in out.getvalue()
    created.refresh_from_db()
    assert (created.size, created.status) == (1, "ready")
    assert AudienceSize.objects.filter(audience=created).count() == 2
