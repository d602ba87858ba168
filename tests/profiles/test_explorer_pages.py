"""The stream explorer's pages: who may open them, what they show, hiding keys, the live
view's polling, failed events, usage, and the demo events command."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from cdp_site.models import Account
from profiles.collection.messages import Failure
from profiles.collection.store import record_failures
from profiles.explorer import aggregate
from profiles.models import (
    AccountNotice,
    FailedEvent,
    Profile,
    RawEvent,
    RawKey,
    Stream,
    TrackingPlan,
)
from tests.conftest import make_account, make_user
from tests.profiles.raw_events import ago, run_aggregator, store, track

HX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture(autouse=True)
def fresh_fences() -> Iterator[None]:
    aggregate.forget_fences()
    yield
    aggregate.forget_fences()


def signed_in(account: Account, *roles: str, name: str = "") -> Client:
    user = make_user(name or "_".join(roles) or "nobody", account, roles)
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def web(account: Account) -> Account:
    """A stream `web` with a day of events, aggregated."""
    store(account, [track("Order Completed", price=9.5, sku="A-1")] * 3,
          received_at=ago(hours=5))
    store(account, [{"type": "identify", "userId": "u1",
                     "traits": {"email": "ana@example.com", "plan": "pro"}}],
          received_at=ago(minutes=10))
    record_failures([Failure("missing_event", "a track message needs an event name",
                             body='{"type": "track"}', line=3)],
                    account=account, stream="web", source="segment")
    run_aggregator()
    return account


@pytest.fixture
def manager(account: Account) -> Client:
    return signed_in(account, "data_manager")


PAGES = [
    "/streams/",
    "/streams/web/",
    "/streams/web/?period=7d&bucket=day",
    "/streams/web/?period=90d&bucket=week",
    "/streams/web/live/",
    "/failed-events/",
    "/failed-events/?code=missing_event&stream=web",
]


@pytest.mark.parametrize("path", PAGES)
def test_each_page_renders_for_a_data_manager(web: Account, manager: Client, path: str) -> None:
    response = manager.get(path)

    assert response.status_code == 200
    html = response.content.decode()
    assert "Strata" in html and web.name in html  # the shell with the current account
    assert 'action="/account/switch/"' in html or 'data-testid="current-account"' in html
    assert response["Cache-Control"].startswith("max-age=0")


def test_anonymous_visitors_are_sent_to_sign_in(client: Client, web: Account) -> None:
    response = client.get("/streams/web/")

    assert response.status_code == 302
    assert response["Location"] == "/admin/login/?next=/streams/web/"


@pytest.mark.parametrize("path", [*PAGES, "/usage/", "/streams/web/live/events/?after_id=0"])
def test_a_marketer_gets_403(web: Account, path: str) -> None:
    response = signed_in(web, "marketer").get(path)

    assert response.status_code == 403
    assert "Your roles do not allow this page" in response.content.decode()


def test_streams_list_shows_counts_last_message_and_failures(web: Account,
                                                            manager: Client) -> None:
    html = manager.get("/streams/").content.decode()

    row = re.search(r'<tr class="row" data-stream="web">(.*?)</tr>', html, re.S).group(1)
    assert "<svg class=\"sparkline\"" in row
    assert ">4<" in row  # events in the last 24 hours
    assert "10 minutes ago" in row
    assert 'href="/failed-events/?stream=web"' in row  # one failed event, linked


def test_stream_page_has_chart_data_raw_keys_and_violations(web: Account,
                                                           manager: Client) -> None:
    TrackingPlan.objects.create(account=web, stream="web", event="Order Completed",
                                schema={"type": "object"})

    response = manager.get("/streams/web/")

    html = response.content.decode()
    assert 'id="ingress-chart"' in html and 'id="ingress-data"' in html
    assert sum(response.context["chart"]["values"]) == 4
    keys = [row["key"].key for row in response.context["key_rows"]]
    assert {"properties.price", "traits.email", "event"} <= set(keys)
    assert "ana@example.com" in html  # a sample value, shown on click
    assert "Order Completed" in html and "allow" in html  # the plan's row


def test_raw_keys_search_and_filters(web: Account, manager: Client) -> None:
    store(web, [track("Page Scrolled")] * 10, received_at=ago(hours=1))
    run_aggregator()  # traits.* are now in 1 of 14 events: uncommon (under 10 %)
    RawKey.objects.filter(account=web, key="properties.sku").update(times_used_by_mappings=2)

    def keys(query: str) -> list[str]:
        response = manager.get(f"/streams/web/keys/?{query}", **HX)
        assert response.status_code == 200
        return [row["key"].key for row in response.context["key_rows"]]

    assert keys("q=traits&ordering=key") == ["traits.email", "traits.plan"]
    assert keys("used=true") == ["properties.sku"]
    assert keys("common=false&ordering=key") == ["traits.email", "traits.plan"]
    assert "traits.email" not in keys("common=true") and "event" in keys("common=true")
    assert keys("q=nothing-like-this") == []


def test_the_keys_fragment_is_for_htmx_only(web: Account, manager: Client) -> None:
    response = manager.get("/streams/web/keys/?q=traits")

    assert response.status_code == 302
    assert response["Location"] == "/streams/web/?q=traits#raw-keys"


def test_a_stream_of_another_account_is_not_found(web: Account, manager: Client) -> None:
    other = make_account("Globex")
    store(other, [track()], stream="crm_only")
    run_aggregator()

    for path in ["/streams/crm_only/", "/streams/crm_only/live/",
                 "/streams/crm_only/live/events/?after_id=0"]:
        assert manager.get(path).status_code == 404
    assert manager.get("/streams/crm_only/keys/", **HX).status_code == 404
    response = manager.post("/streams/crm_only/keys/visibility/",
                            {"key": "event", "hidden": "true"})
    assert response.status_code == 404
    assert not RawKey.objects.filter(account=other, hidden=True).exists()
    assert "crm_only" not in manager.get("/streams/").content.decode()


def test_a_data_manager_hides_and_unhides_a_key(web: Account, manager: Client) -> None:
    response = manager.post("/streams/web/keys/visibility/", {
        "key": "traits.plan", "hidden": "true", "next": "/streams/web/?q=traits"})

    assert response.status_code == 302
    assert response["Location"] == "/streams/web/?q=traits"
    assert RawKey.objects.get(account=web, key="traits.plan").hidden
    keys = [r["key"].key for r in manager.get("/streams/web/").context["key_rows"]]
    assert "traits.plan" not in keys
    shown = manager.get("/streams/web/?hidden=all").context["key_rows"]
    assert "traits.plan" in [r["key"].key for r in shown]

    again = manager.post("/streams/web/keys/visibility/",
                         {"key": "traits.plan", "hidden": "false", "show_hidden": "true"}, **HX)
    assert again.status_code == 200
    assert 'data-key="traits.plan"' in again.content.decode()  # the row, for htmx to swap
    assert not RawKey.objects.get(account=web, key="traits.plan").hidden


def test_hiding_answers_htmx_with_nothing_when_the_key_leaves_the_table(
        web: Account, manager: Client) -> None:
    response = manager.post("/streams/web/keys/visibility/",
                            {"key": "traits.plan", "hidden": "true"}, **HX)

    assert response.status_code == 200
    assert response.content == b""


def test_hiding_a_key_is_refused_for_a_marketer(web: Account) -> None:
    response = signed_in(web, "marketer").post(
        "/streams/web/keys/visibility/", {"key": "traits.plan", "hidden": "true"})

    assert response.status_code == 403
    assert not RawKey.objects.get(account=web, key="traits.plan").hidden


def test_hiding_a_key_needs_the_csrf_token(web: Account) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(make_user("dm", web, ["data_manager"]))

    response = client.post("/streams/web/keys/visibility/",
                           {"key": "traits.plan", "hidden": "true"})

    assert response.status_code == 403
    assert not RawKey.objects.get(account=web, key="traits.plan").hidden


def test_the_hide_button_is_only_for_those_who_may_edit(web: Account) -> None:
    admin_html = signed_in(web, "admin").get("/streams/web/").content.decode()
    assert 'data-testid="hide-key"' in admin_html
    assert 'name="csrfmiddlewaretoken"' in admin_html


def test_live_view_lists_newest_first(web: Account, manager: Client) -> None:
    response = manager.get("/streams/web/live/")

    events = response.context["events"]
    assert [e["title"] for e in events] == ["Identify", *["Order Completed"] * 3]
    assert events[0]["detail"] == "ana@example.com"
    assert "&quot;email&quot;: &quot;ana@example.com&quot;" in response.content.decode()  # JSON
    assert f'after_id={events[0]["id"]}' in response.content.decode()  # the poller


def test_live_view_summarises_a_json_record_by_its_identifier_and_values(
        web: Account, manager: Client) -> None:
    store(web, [{"origin": {"email": "bo@example.com"},
                 "response": {"loyalty_tier": "gold", "preferred_activities": ["ski", "spa"],
                              "points": 1200, "since": "2020-01-01"}}],
          stream="crm_users", received_at=ago(seconds=5))
    [record] = manager.get("/streams/crm_users/live/").context["events"]
    assert record["type"] == "record"
    # the first three values as stored (jsonb keeps an object's keys shortest first)
    assert record["title"] == "since 2020-01-01 · points 1200 · loyalty_tier gold"
    assert record["detail"].endswith(" values")  # more than the three shown
    assert (record["who_kind"], record["who"]) == ("email", "bo@example.com")


def test_live_events_after_id_returns_only_newer_events(web: Account, manager: Client) -> None:
    newest = RawEvent.objects.for_account(web).filter(stream="web").order_by("-id")[0].id
    store(web, [track("Signup Started"), track("Signup Completed")], received_at=ago(seconds=1))
    store(web, [track("Other stream")], stream="app", received_at=ago(seconds=1))

    response = manager.get(f"/streams/web/live/events/?after_id={newest}", **HX)

    assert response.status_code == 200
    assert [e["title"] for e in response.context["events"]] == [
        "Signup Completed", "Signup Started"]
    html = response.content.decode()
    assert "Other stream" not in html and "Identify" not in html
    latest = response.context["events"][0]["id"]
    assert f"after_id={latest}" in html  # the next poll asks for what comes after these
    assert 'hx-target="#live-events"' in html

    quiet = manager.get(f"/streams/web/live/events/?after_id={latest}", **HX)
    assert quiet.context["events"] == []
    assert f"after_id={latest}" in quiet.content.decode()
    assert "<template" not in quiet.content.decode()


def test_failed_events_filters_and_body(web: Account, manager: Client) -> None:
    record_failures([Failure("invalid_json", "The body is not JSON.", body="{oops")],
                    account=web, stream="app", source="json")
    record_failures([Failure("invalid_json", "other account", body="x")],
                    account=make_account("Globex"), stream="web", source="json")

    listed = manager.get("/failed-events/").context["page"].events
    assert sorted(e.code for e in listed) == ["invalid_json", "missing_event"]
    by_code = manager.get("/failed-events/?code=invalid_json").context["page"].events
    assert [e.stream for e in by_code] == ["app"]
    by_stream = manager.get("/failed-events/?stream=web").context["page"].events
    assert [e.code for e in by_stream] == ["missing_event"]

    failed = by_stream[0]
    fragment = manager.get(f"/failed-events/{failed.pk}/", **HX)
    assert fragment.status_code == 200
    assert "&quot;type&quot;: &quot;track&quot;" in fragment.content.decode()  # pretty JSON
    assert "<html" not in fragment.content.decode()
    page = manager.get(f"/failed-events/{failed.pk}/")
    assert page.status_code == 200 and "<html" in page.content.decode()
    foreign = FailedEvent.objects.exclude(account=web).get()
    assert manager.get(f"/failed-events/{foreign.pk}/").status_code == 404


def test_failed_events_page_older_and_newer(web: Account, manager: Client) -> None:
    record_failures([Failure("invalid_json", f"bad {n}", body="{") for n in range(60)],
                    account=web, stream="web", source="json")

    first = manager.get("/failed-events/")
    assert len(first.context["page"].events) == 50
    older = manager.get("/failed-events/" + first.context["older_url"])
    assert len(older.context["page"].events) == 11
    assert older.context["older_url"] == ""
    newer = manager.get("/failed-events/" + older.context["newer_url"])
    assert [e.pk for e in newer.context["page"].events] == [
        e.pk for e in first.context["page"].events]


def test_usage_for_admins_with_quota_and_notice(web: Account) -> None:
    web.monthly_event_quota = 4
    web.save()
    notice = AccountNotice.objects.create(account=web, kind=f"quota_reached:{timezone.now():%Y-%m}",
                                          message="The monthly quota of 4 events is used up.")
    admin = signed_in(web, "admin")

    response = admin.get("/usage/")

    assert response.status_code == 200
    html = response.content.decode()
    assert response.context["report"].events_this_month == 4
    assert "100.0 %" in html  # 4 of 4
    assert "Monthly quota reached" in html and "4 events is used up" in html
    assert sum(response.context["day_chart"]["values"]) == 4
    assert 'href="/usage/"' in html  # the nav shows Usage to Admins

    resolved = admin.post(f"/usage/notices/{notice.pk}/resolve/")
    assert resolved.status_code == 302
    notice.refresh_from_db()
    assert notice.resolved_at is not None


def test_usage_is_for_admins_only(web: Account, manager: Client) -> None:
    assert manager.get("/usage/").status_code == 403
    assert 'href="/usage/"' not in manager.get("/streams/").content.decode()


def test_unknown_stream_page_says_so(web: Account, manager: Client) -> None:
    response = manager.get("/streams/nope/")

    assert response.status_code == 404
    assert "No such stream" in response.content.decode()


def test_empty_account_shows_empty_states(account: Account, manager: Client) -> None:
    Stream.objects.create(account=account, name="fresh")

    listing = manager.get("/streams/").content.decode()
    page = manager.get("/streams/fresh/").content.decode()
    live = manager.get("/streams/fresh/live/").content.decode()
    failed = manager.get("/failed-events/").content.decode()

    assert "No events yet" in listing
    assert "No events in the last 24 hours" in page and "No raw keys yet" in page
    assert "Waiting for events" in live
    assert "No failed events" in failed


def test_seed_demo_events_sends_through_collection_once(db: Any) -> None:
    demo = make_account("Demo Travel", slug="demo")

    call_command("seed_demo_events", days=1, sessions_per_slot=2)

    stored = RawEvent.objects.for_account(demo)
    web_events = stored.filter(stream="web").count()
    assert web_events > 50 and stored.filter(stream="crm_users").exists()
    assert stored.filter(type="page").exists() and stored.filter(type="identify").exists()
    assert RawKey.objects.filter(account=demo, stream="web",
                                 key="properties.content.category").exists()
    assert Stream.objects.filter(account=demo, name="web").exists()

    # the Lytics use-case schema is published first, so processing builds profiles
    from profiles.models import SchemaVersion
    from profiles.processing.pipeline import process_pending

    assert SchemaVersion.objects.for_account(demo).count() == 1
    process_pending(account_id=demo.pk)
    assert Profile.objects.for_account(demo).filter(
        field_values__email__endswith="@example.com").exists()
    # CRM records (origin.email, response.*) join the website's profiles by email
    crm_joined = Profile.objects.for_account(demo).filter(
        field_values__has_keys=["email", "loyalty_tier", "preferred_activities", "_uid"])
    assert crm_joined.exists()

    call_command("seed_demo_events", days=1)

    assert RawEvent.objects.for_account(demo).filter(stream="web").count() == web_events
    assert SchemaVersion.objects.for_account(demo).count() == 1  # idempotent


def test_home_opens_the_dashboard_for_every_member(
        web: Account, manager: Client, client: Client) -> None:
    assert manager.get("/")["Location"] == "/dashboard/"
    assert signed_in(web, "marketer").get("/")["Location"] == "/dashboard/"
    assert client.get("/")["Location"] == "/admin/login/?next=/"


def test_the_chart_refreshes_from_the_ingress_api_with_the_session(web: Account,
                                                                   manager: Client) -> None:
    page = manager.get("/streams/web/?period=7d&bucket=day")
    refresh = re.search(r'data-refresh="([^"]+)"', page.content.decode()).group(1)

    response = manager.get(refresh.replace("&amp;", "&"))

    assert response.status_code == 200
    body = response.json()
    assert (body["period"], body["bucket"], body["total"]) == ("7d", "day", 4)


def test_an_empty_account_points_to_the_members_other_accounts_with_data(
        web: Account) -> None:
    from tests.conftest import add_membership

    empty = make_account("Empty Foods")
    user = make_user("two_accounts", empty, ["data_manager"])
    add_membership(user, web, ["data_manager"])
    make_account("Not Mine")  # others' accounts are never named
    client = Client()
    client.force_login(user)
    client.post("/account/switch/", {"account": empty.pk, "next": "/streams/"})

    html = client.get("/streams/").content.decode()

    assert 'data-testid="elsewhere"' in html
    assert f'value="{web.pk}">Switch to {web.name}' in html
    assert "Not Mine" not in html


def test_a_fragment_request_after_sign_out_sends_the_page_to_sign_in(client: Client,
                                                                    web: Account) -> None:
    response = client.get("/streams/web/live/events/?after_id=1", HTTP_HX_REQUEST="true",
                          HTTP_HX_CURRENT_URL="http://testserver/streams/web/live/")

    assert response.status_code == 204
    assert response["HX-Redirect"] == "/admin/login/?next=/streams/web/live/"
