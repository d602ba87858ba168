"""Retention of profiles (issue #14, item 5): profile events older than M days go; anonymous
profiles (cookies only) not seen for K days go with their memberships and assignments; the
API and the admin say what the next run would remove and when."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.test import Client
from django_q.models import Schedule

from audiences.models import AudienceMembership
from experiences import config
from experiences.models import Assignment
from profiles.models import Identifier, Profile, ProfileEvent, ProfileRetention
from profiles.privacy import retention
from profiles.tasks import apply_profile_retention
from tests.conftest import make_user
from tests.experiences.decide_helpers import make_audience
from tests.experiences.tracking_fixtures import ab_test, assigned
from tests.profiles.privacy_helpers import api

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)


def person(account, *identifiers, last_seen, events=()):
    profile = Profile.objects.create(account=account, first_seen=last_seen,
                                     last_seen=last_seen)
    for field, value in identifiers:
        Identifier.objects.create(account=account, field=field, value=value, profile=profile,
                                  first_seen=last_seen, last_seen=last_seen)
    ProfileEvent.objects.bulk_create([
        ProfileEvent(account=account, profile=profile, raw_event_id=0, stream="web",
                     event="page", at=at) for at in events])
    return profile


def test_old_events_and_stale_anonymous_profiles_go_through_the_delete_hooks(account):
    config.invalidate()
    ab_test(account)
    known = person(account, ("email", "ann@example.com"), ("_uid", "c-ann"),
                   last_seen=NOW - 400 * DAY, events=[NOW - 100 * DAY, NOW - 5 * DAY])
    stale = person(account, ("_uid", "c-stale"), last_seen=NOW - 40 * DAY,
                   events=[NOW - 40 * DAY])
    fresh = person(account, ("_uid", "c-fresh"), last_seen=NOW - 2 * DAY)
    AudienceMembership.objects.create(account=account, audience=make_audience(account, "all"),
                                      profile=stale)
    assigned(account, "c-stale", identifiers={"_uid": "c-stale"})
    Assignment.objects.filter(visitor="c-stale").update(profile_id=stale.pk)
    policy = ProfileRetention.objects.create(account=account, event_days=30, anonymous_days=30)

    before = retention.preview(policy, NOW)
    assert (before.profile_events, before.anonymous_profiles) == (2, 1)
    assert before.next_run == datetime(2026, 12, 2, 3, 0, tzinfo=UTC)
    assert retention.apply_retention(policy, NOW) == {"profile_events": 2,
                                                      "anonymous_profiles": 1}
    assert set(Profile.objects.filter(account=account).values_list("id", flat=True)) == {
        known.pk, fresh.pk}  # identified profiles stay, however old
    assert list(ProfileEvent.objects.filter(profile=known).values_list("at", flat=True)) == [
        NOW - 5 * DAY]
    assert not AudienceMembership.objects.filter(profile_id=stale.pk).exists()
    assert not Assignment.objects.filter(visitor="c-stale").exists()
    policy.refresh_from_db()
    assert policy.last_run_at == NOW and policy.last_result["anonymous_profiles"] == 1
    after = retention.preview(policy, NOW)
    assert (after.profile_events, after.anonymous_profiles) == (0, 0)
    config.invalidate()


def test_no_policy_keeps_everything_and_the_task_is_scheduled_daily(account):
    person(account, ("_uid", "c-old"), last_seen=NOW - 900 * DAY, events=[NOW - 900 * DAY])
    ProfileRetention.objects.create(account=account)  # both empty: kept
    assert apply_profile_retention() == 1
    assert Profile.objects.filter(account=account).count() == 1
    assert ProfileEvent.objects.filter(account=account).count() == 1
    schedule = Schedule.objects.get(name="profiles.apply_profile_retention")
    assert (schedule.func, schedule.schedule_type) == ("profiles.tasks.apply_profile_retention",
                                                      "D")


def test_the_api_and_the_admin_show_the_policy_and_the_next_run(account):
    person(account, ("_uid", "c-old"), last_seen=datetime.now(UTC) - 90 * DAY)
    admin = api(account, "admin")
    got = admin.get("/api/v1/profile-retention/")
    assert got.status_code == 200, got.content
    assert got.json()["event_days"] is None
    changed = admin.patch("/api/v1/profile-retention/", {"anonymous_days": 30}, format="json")
    assert changed.status_code == 200, changed.content
    assert changed.json()["next_run"]["anonymous_profiles"] == 1
    for body in ({"anonymous_days": 0}, {"event_days": "soon"},
                 {"anonymous_fields": ["bad field"]}):
        refused = admin.patch("/api/v1/profile-retention/", body, format="json")
        assert refused.status_code == 400 and "code" in refused.json(), body
    assert ProfileRetention.objects.get(account=account).anonymous_days == 30
    for role in ("data_manager", "marketer"):
        assert api(account, role).patch("/api/v1/profile-retention/", {"event_days": 1},
                                        format="json").status_code == 403

    client = Client()
    client.force_login(make_user("ada", account, roles=["admin"]))
    page = client.get("/admin/profiles/profileretention/")
    assert page.status_code == 200
    assert "0 profile events, 1 anonymous profiles" in page.content.decode()
