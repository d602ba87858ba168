"""The processing run: collection to profile (the issue's "Done when"), per-event failures
and warnings that let the batch go on, route rules and guards, downstream steps from settings,
lag and throughput, and batches whose queries do not grow with their size."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from profiles.collection.bulk import import_events
from profiles.models import (
    EventWarning,
    FailedEvent,
    PendingEvent,
    Profile,
    ProfileEvent,
)
from profiles.processing.batch import Batch
from profiles.processing.identity import find_profile
from profiles.processing.pipeline import processing_status
from profiles.processing.rebuild import rebuild_status, retry_failed_events, start_rebuild
from profiles.schema.drafts import save_field, save_mapping, save_route_rule
from profiles.schema.lytics import install_lytics_schema
from profiles.schema.versions import publish
from tests.profiles.conftest import basic_auth, jstag_query, make_write_key
from tests.profiles.processing import (
    T0,
    identifiers,
    identity_schema,
    live_profiles,
    profile_with,
    run,
    send,
)

pytestmark = pytest.mark.django_db
A = "mason@example.com"


def test_page_view_identify_and_crm_record_make_one_profile(client: Client, account):
    """The Lytics use cases' data side, through the real collection paths: a tag page view
    with taxonomy=cuisine, a Segment identify with an email on the same cookie, and a CRM
    record joining by email."""
    install_lytics_schema(account)
    _key, secret = make_write_key(account, stream="default")
    client.cookies["seerid"] = "visitor-1"
    assert client.get(f"/c/{account.aid}?{jstag_query({'_e': 'pv', 'taxonomy': 'cuisine'})}"
                      ).status_code == 200
    run(account)
    [anonymous] = live_profiles(account)
    assert anonymous.field_values == {"_uid": ["visitor-1"], "taxonomy": "cuisine"}
    assert identifiers(anonymous) == {"visitor-1"}

    response = client.post("/v1/identify", data={
        "anonymousId": "visitor-1", "traits": {"email": "Mason@Example.com"}},
        content_type="application/json", HTTP_AUTHORIZATION=basic_auth(secret))
    assert response.status_code == 200
    run(account)
    found = find_profile(account, "email", A)
    assert found is not None and found.pk == anonymous.pk
    assert found.field_values["taxonomy"] == "cuisine"  # its earlier behaviour
    assert ProfileEvent.objects.filter(profile=found).count() == 2

    response = client.post("/collect/json/crm_users", data={
        "origin.email": A, "response.loyalty_tier": "gold",
        "response.preferred_activities": ["hiking", "cooking"]},
        content_type="application/json", HTTP_X_API_KEY=secret)
    assert response.status_code == 200
    run(account)
    [profile] = live_profiles(account)
    assert profile.pk == anonymous.pk
    assert profile.field_values == {
        "_uid": ["visitor-1"], "email": A, "taxonomy": "cuisine", "loyalty_tier": "gold",
        "preferred_activities": ["cooking", "hiking"]}
    assert profile.identifier_count == 2
    assert Profile.objects.filter(field_values__contains={"loyalty_tier": "gold"}).get() == \
        profile
    streams = list(ProfileEvent.objects.filter(profile=profile).order_by("id")
                   .values_list("stream", "event"))
    assert streams == [("default", "page"), ("default", "identify"), ("crm_users", "")]


def test_a_value_that_does_not_fit_its_field_is_skipped_with_a_warning(account):
    identity_schema(account)
    visits = save_field(account, name="visits", type="int", merge_operator="sum")
    save_mapping(account, field=visits, stream="web", expression="visits")
    publish(account)
    send(account, {"_uid": "x", "visits": "many", "page": "home"}, {"_uid": "x", "visits": 2})
    run(account)
    [profile] = live_profiles(account)
    assert profile.field_values["page"] == "home"
    assert profile.field_values["visits"] == 2
    warning = EventWarning.objects.get()
    assert (warning.code, warning.field, warning.stream) == ("type_mismatch", "visits", "web")
    assert "'many'" in warning.message
    assert FailedEvent.objects.count() == 0


def test_an_expression_error_fails_that_event_and_the_batch_goes_on(account):
    identity_schema(account)
    name = save_field(account, name="name", type="string", merge_operator="latest")
    save_mapping(account, field=name, stream="web", expression="tolower(name)")
    publish(account)
    send(account, {"_uid": "x", "name": "Ann"}, {"_uid": "y", "name": {"first": "Bo"}},
         {"_uid": "z", "name": "Cy"})
    assert run(account) == 3
    assert sorted(p.field_values["name"] for p in live_profiles(account)) == ["ann", "cy"]
    failure = FailedEvent.objects.get()
    assert (failure.stage, failure.code, failure.stream) == ("process", "expression_error",
                                                             "web")
    assert "tolower" in failure.reason and "mapping of name" in failure.reason
    assert failure.raw_event_id is not None and '"Bo"' in failure.body
    assert PendingEvent.objects.count() == 0


def test_route_rules_move_events_before_mapping(account):
    identity_schema(account)
    save_route_rule(account, input_stream="web", expression='contains(page, "localhost")',
                    output_stream="app_divert")
    publish(account)
    send(account, {"_uid": "x", "page": "http://localhost/"}, {"_uid": "y", "page": "/home"})
    run(account)
    [profile] = live_profiles(account)
    assert identifiers(profile) == {"y"}
    assert ProfileEvent.objects.get().stream == "web"


def test_a_guard_decides_whether_a_mapping_applies(account):
    identity_schema(account)
    plan = save_field(account, name="plan", type="string", merge_operator="latest")
    save_mapping(account, field=plan, stream="web", expression="plan",
                 guard='event = "Subscribed"')
    publish(account)
    send(account, {"_uid": "x", "plan": "free", "event": "Viewed"},
         {"_uid": "y", "plan": "pro", "event": "Subscribed"})
    run(account)
    assert "plan" not in profile_with(account, "x").field_values
    assert profile_with(account, "y").field_values["plan"] == "pro"


def test_latest_follows_event_time_not_arrival(account):
    identity_schema(account)
    send(account, {"_uid": "x", "page": "newer"}, at=T0 + timedelta(hours=1))
    send(account, {"_uid": "x", "page": "older"}, at=T0)
    run(account)
    profile = profile_with(account, "x")
    assert profile.field_values["page"] == "newer"
    assert (profile.first_seen, profile.last_seen) == (T0, T0 + timedelta(hours=1))


def test_events_before_any_schema_leave_the_queue_without_profiles(account):
    send(account, {"_uid": "x"})
    assert run(account) == 1
    assert PendingEvent.objects.count() == 0
    assert Profile.objects.count() == 0


def test_bulk_imports_are_queued_for_processing(account):
    identity_schema(account)
    body = b'{"_uid": "x", "page": "a"}\n{"_uid": "x", "page": "b"}\n'
    summary = import_events(account, "web", [body])
    assert summary.stored == 2
    assert PendingEvent.objects.filter(account=account).count() == 2
    again = import_events(account, "web", [b'{"messageId": "m1", "_uid": "x"}\n'
                                           b'{"messageId": "m1", "_uid": "x"}\n'])
    assert again.stored == 1 and PendingEvent.objects.count() == 3
    run(account)
    assert profile_with(account, "x").event_count == 3


def test_downstream_steps_named_in_settings_run_after_merge(account, settings):
    seen: list[tuple[set[int], dict[int, int]]] = []

    def audiences_step(batch: Batch) -> None:
        seen.append((set(batch.changed_profiles), dict(batch.merged)))

    import tests.profiles.test_pipeline as me

    me.audiences_step = audiences_step  # type: ignore[attr-defined]
    settings.STRATA_PIPELINE_STEPS = [*settings.STRATA_PIPELINE_STEPS,
                                      "tests.profiles.test_pipeline.audiences_step"]
    identity_schema(account)
    send(account, {"_uid": "x"}, {"_uid": "y"})
    run(account)
    send(account, {"_uid": ["x", "y"]})
    run(account)
    x, y = profile_with(account, "x"), Profile.objects.filter(merged_into__isnull=False).get()
    assert seen[0][0] == {x.pk, y.pk}
    assert seen[1] == ({x.pk}, {y.pk: x.pk})


def test_processing_status_shows_lag_and_throughput(account):
    from django.utils import timezone

    identity_schema(account)
    send(account, {"_uid": "x"}, {"_uid": "y"})
    status = processing_status(account, now=timezone.now() + timedelta(seconds=30))
    assert status.pending == 2
    assert status.lag_seconds >= 30
    run(account)
    status = processing_status(account)
    assert (status.pending, status.lag_seconds, status.oldest_pending_at) == (0, 0.0, None)
    assert status.events_last_minute == 2
    assert status.events_per_minute == pytest.approx(2 / 5)
    assert set(status.as_dict()) >= {"pending", "lag_seconds", "events_per_minute"}


def _queries_for(account: Any, n: int, offset: int) -> int:
    send(account, *({"email": f"p{offset + i}@example.com", "_uid": f"c{offset + i}",
                     "page": "p"} for i in range(n)))
    with CaptureQueriesContext(connection) as captured:
        run(account)
    return len(captured)


def test_a_batchs_queries_do_not_grow_with_its_size(account, settings):
    # The decision config's once-a-second freshness check (experiences.config, read by the
    # tracking step) would fall in whichever batch runs after a second: not on a busy machine.
    settings.STRATA_EXPERIENCE_CONFIG_TTL = 3600
    identity_schema(account)
    _queries_for(account, 3, 0)  # warm: schema compiled, account known
    small = _queries_for(account, 5, 100)
    large = _queries_for(account, 200, 1000)
    assert small == large


def test_a_rebuild_recomputes_profiles_with_the_new_schema(account):
    identity_schema(account)
    send(account, {"_uid": "x", "page": "home", "plan": "pro"},
         {"_uid": "x", "email": A, "page": "cart"})
    run(account)
    before = profile_with(account, "x")
    assert "plan" not in before.field_values
    plan = save_field(account, name="plan", type="string", merge_operator="latest")
    save_mapping(account, field=plan, stream="web", expression="plan")
    publish(account)
    rebuild = start_rebuild(account)
    assert rebuild.events_total == 2 and rebuild.schema_version.number == 2
    assert Profile.objects.filter(account=account).count() == 0
    status = rebuild_status(account)
    assert (status.done, status.progress, status.finished) == (0, 0.0, False)
    send(account, {"_uid": "x", "page": "thanks"})  # collection keeps working meanwhile
    run(account)
    [profile] = live_profiles(account)
    assert profile.field_values["plan"] == "pro"
    assert profile.field_values["pages"] == ["cart", "home", "thanks"]
    assert identifiers(profile) == {"x", A}
    assert ProfileEvent.objects.filter(account=account).count() == 3
    status = rebuild_status(account)
    assert status.finished and status.progress == 1.0


def test_failed_events_can_be_retried_after_a_schema_fix(account):
    identity_schema(account)
    name = save_field(account, name="name", type="string", merge_operator="latest")
    mapping = save_mapping(account, field=name, stream="web", expression="tolower(name)")
    publish(account)
    send(account, {"_uid": "x", "name": 5})
    run(account)
    assert FailedEvent.objects.count() == 1 and live_profiles(account) == []
    save_mapping(account, instance=mapping, field=name, stream="web",
                 expression="tolower(tostring(name))")
    publish(account)
    assert retry_failed_events(account) == 1
    assert FailedEvent.objects.count() == 0
    run(account)
    assert profile_with(account, "x").field_values["name"] == "5"


def test_a_profile_deleted_under_a_batch_makes_the_batch_start_again(account, settings):
    identity_schema(account)
    send(account, {"_uid": "x", "page": "one"})
    run(account)
    deleted: list[int] = []

    def delete_once(batch: Batch) -> None:
        if not deleted:  # as a GDPR delete committing between identify and merge would
            target = next(e.profile_id for e in batch.events if e.profile_id)
            with connection.cursor() as cursor:
                cursor.execute("SET CONSTRAINTS ALL DEFERRED")
                cursor.execute("DELETE FROM profiles_profile WHERE id = %s", [target])
            deleted.append(target)

    import tests.profiles.test_pipeline as me

    me.delete_once = delete_once  # type: ignore[attr-defined]
    settings.STRATA_PIPELINE_STEPS = ["profiles.processing.steps.route",
                                      "profiles.processing.steps.map_fields",
                                      "profiles.processing.steps.identify",
                                      "tests.profiles.test_pipeline.delete_once",
                                      "profiles.processing.steps.merge"]
    send(account, {"_uid": "x", "page": "two"})
    assert run(account) == 1
    assert deleted
    assert profile_with(account, "x").field_values["pages"] == ["one", "two"]


def test_values_past_keep_days_leave_profiles_nobody_touches(account):
    from profiles.processing.steps import refresh_aged_values

    identity_schema(account)
    promo = save_field(account, name="promo", type="string", merge_operator="latest",
                       keep_days=30)
    save_mapping(account, field=promo, stream="web", expression="promo")
    publish(account)
    from django.utils import timezone

    recent = timezone.now() - timedelta(days=1)
    send(account, {"_uid": "x", "promo": "spring", "page": "a"}, at=recent)
    send(account, {"_uid": "y", "promo": "winter", "page": "b"}, at=recent - timedelta(days=20))
    run(account)
    assert profile_with(account, "y").field_values["promo"] == "winter"
    assert refresh_aged_values(account.pk, now=timezone.now() + timedelta(days=15)) == 2
    from profiles import tasks

    # the daily task looks only at profiles still holding a value that can age
    assert tasks.refresh_aged_values() == 1
    assert "promo" not in profile_with(account, "y").field_values
    assert profile_with(account, "y").field_values["page"] == "b"
    assert profile_with(account, "x").field_values["promo"] == "spring"


def poison_step(batch: Batch) -> None:
    if any(e.message.get("poison") for e in batch.events):
        raise ValueError("a downstream step cannot handle this event")


def test_one_event_that_breaks_a_step_is_set_aside_and_the_rest_goes_on(account, settings):
    identity_schema(account)
    settings.STRATA_PIPELINE_STEPS = [*settings.STRATA_PIPELINE_STEPS,
                                      "tests.profiles.test_pipeline.poison_step"]
    messages = [{"_uid": f"c{i}", "page": f"p{i}"} for i in range(40)]
    messages[23]["poison"] = True
    send(account, *messages)
    assert run(account, limit=16) == 39
    assert PendingEvent.objects.count() == 0
    assert len(live_profiles(account)) == 39
    failure = FailedEvent.objects.get()
    assert (failure.code, failure.stage) == ("processing_error", "process")
    assert "cannot handle this event" in failure.reason and '"poison": true' in failure.body


def test_a_fault_that_fails_every_event_is_raised_not_hidden(account, settings):
    identity_schema(account)
    settings.STRATA_PIPELINE_STEPS = [*settings.STRATA_PIPELINE_STEPS,
                                      "tests.profiles.test_pipeline.poison_step"]
    send(account, *({"_uid": f"c{i}", "poison": True} for i in range(10)))
    from profiles.processing.pipeline import BatchFailed

    with pytest.raises(BatchFailed):
        run(account)
    assert FailedEvent.objects.count() == 3  # set aside before giving up
    assert PendingEvent.objects.count() == 7
    with pytest.raises(BatchFailed):  # and no more until something succeeds
        run(account)
    assert FailedEvent.objects.count() == 3
    from profiles.processing.pipeline import _SET_ASIDE_STREAK

    _SET_ASIDE_STREAK.clear()
