"""The Personalize Edge API (PROTOCOLS.md §4) through Django's test client, as the SDK sends
it (JSON bodies as text/plain): the manifest and user uids, attributes and events stored
through the collection core, impressions, merges; and every bad input refused with nothing
changed."""

from __future__ import annotations

import gzip
import json
import uuid
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client

from audiences.models import Audience, AudienceMembership
from cdp_site.models import Account
from experiences import config
from experiences.models import (
    Assignment,
    Conversion,
    DataQualityWarning,
    Experience,
    Impression,
)
from profiles.models import FailedEvent, RawEvent
from profiles.processing.identity import find_profile
from profiles.schema.lytics import install_lytics_schema
from tests.experiences.tracking_fixtures import ab_test, assigned, other_variant
from tests.profiles.processing import live_profiles, run

pytestmark = pytest.mark.django_db
TEXT = "text/plain;charset=UTF-8"


@pytest.fixture(autouse=True)
def _fresh_config() -> Any:
    config.invalidate()
    yield
    config.invalidate()


@pytest.fixture
def hero(account: Account) -> Experience:
    install_lytics_schema(account)
    return ab_test(account, goal_event="booked")


class Edge:
    """The SDK's requests: project and user headers, text/plain JSON bodies."""

    def __init__(self, client: Client, project: str, user: str | None = None) -> None:
        self.client, self.project, self.user = client, project, user

    def headers(self, **extra: str) -> dict[str, str]:
        found = {"HTTP_X_PROJECT_UID": self.project,
                 "HTTP_X_USER_AGENT": "personalize-edge-sdk-js/1.0.27"}
        if self.user is not None:
            found["HTTP_X_CS_PERSONALIZE_USER_UID"] = self.user
        found.update(extra)
        return found

    def manifest(self, query: str = "", **headers: str) -> Any:
        return self.client.get(f"/personalize/manifest{query}", **self.headers(**headers))

    def send(self, method: str, path: str, body: Any, **headers: str) -> Any:
        data = body if isinstance(body, bytes | str) else json.dumps(body)
        return getattr(self.client, method)(f"/personalize/{path}", data=data,
                                            content_type=TEXT, **self.headers(**headers))


@pytest.fixture
def edge(client: Client, account: Account) -> Edge:
    return Edge(client, account.aid)


def stored_count() -> tuple[int, int, int, int]:
    return (RawEvent.objects.count(), Impression.objects.count(), Assignment.objects.count(),
            DataQualityWarning.objects.count())


# --------------------------------------------------------------------------- manifest


def test_manifest_mints_a_user_uid_and_answers_the_active_variants(edge, account, hero) -> None:
    response = edge.manifest("?tags[]=home", HTTP_X_PAGE_URL="https://shop.example/")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    uid = response["X-CS-Personalize-User-Uid"]
    assert uuid.UUID(uid)
    [entry] = response.json()["experiences"]
    assignment = Assignment.objects.get(experience=hero, visitor=uid)
    assert entry == {"shortUid": "a", "activeVariantShortUid": assignment.variant.uid}

    edge.user = uid  # the SDK sends it back: same visitor, same variant, no new uid
    again = edge.manifest()
    assert again["X-CS-Personalize-User-Uid"] == uid
    assert again.json() == response.json()
    assert Assignment.objects.filter(experience=hero).count() == 1


def test_manifest_gives_null_to_visitors_outside_the_experiment(edge, account, hero) -> None:
    ab_test(account, "paused", "p", status="paused")
    Experience.objects.filter(pk=hero.pk).update(traffic_allocation=0.0, version=5)
    config.invalidate(account.pk)
    experiences = edge.manifest().json()["experiences"]
    assert sorted(experiences, key=lambda e: e["shortUid"]) == [
        {"shortUid": "a", "activeVariantShortUid": None},
        {"shortUid": "p", "activeVariantShortUid": None}]
    assert not Assignment.objects.exists()


def test_manifest_serves_the_segment_of_the_visitors_lytics_profile(edge, account) -> None:
    """The SDK sends the seerid cookie as X-Lytics-Id-Field/-Value: the profile it names is
    in the cuisine audience, so the cuisine variant is active."""
    install_lytics_schema(account)
    cuisine = Audience.objects.create(account=account, slug="cuisine", name="Cuisine",
                                      rule={"field": "taxonomy", "op": "=", "value": "cuisine"},
                                      api_accessible=True)
    ab_test(account, "banner", "s", variants=("base", "cuisine"), type="segmented",
            audiences={"cuisine": cuisine})
    edge.send("post", "events", [{"type": "EVENT", "eventKey": "x"}],
              HTTP_X_CS_PERSONALIZE_USER_UID="seer-1")  # makes the seer-1 profile
    run(account)
    profile = find_profile(account, "_uid", "seer-1")
    AudienceMembership.objects.create(account=account, audience=cuisine, profile=profile)
    got = edge.manifest(HTTP_X_LYTICS_ID_FIELD="_uid", HTTP_X_LYTICS_ID_VALUE="seer-1").json()
    assert got == {"experiences": [{"shortUid": "s", "activeVariantShortUid": "1"}]}
    assert edge.manifest().json() == {
        "experiences": [{"shortUid": "s", "activeVariantShortUid": None}]}


@pytest.mark.parametrize("headers", [{}, {"HTTP_X_PROJECT_UID": "nope"},
                                     {"HTTP_X_PROJECT_UID": ""}])
def test_an_unknown_project_is_404_as_the_sdk_expects(client, account, hero, headers) -> None:
    response = client.get("/personalize/manifest", **headers)
    assert response.status_code == 404
    assert response.json()["error"] == "personalize.MANIFEST.PROJECT_NOT_FOUND"
    assert response.json()["code"] == "project_not_found"
    for path in ("events", "user-attributes/actions/merge"):
        assert client.post(f"/personalize/{path}", data="[]", content_type=TEXT,
                           **headers).status_code == 404
    assert not Assignment.objects.exists()


def test_a_disabled_account_is_403(edge, account, hero) -> None:
    Account.objects.filter(pk=account.pk).update(enabled=False)
    response = edge.manifest()
    assert response.status_code == 403 and response.json()["code"] == "account_disabled"


@pytest.mark.parametrize(("headers", "code"), [
    ({"HTTP_X_LIVE_ATTRIBUTES": "{not json"}, "invalid_live_attributes"),
    ({"HTTP_X_LIVE_ATTRIBUTES": "[1, 2]"}, "invalid_live_attributes"),
    ({"HTTP_X_LIVE_ATTRIBUTES": json.dumps({f"k{i}": i for i in range(101)})},
     "invalid_live_attributes"),
    ({"HTTP_X_CS_PERSONALIZE_USER_UID": "bad\x01uid"}, "invalid_user_uid"),
    ({"HTTP_X_CS_PERSONALIZE_USER_UID": "u" * 301}, "invalid_user_uid"),
    ({"HTTP_X_LYTICS_ID_FIELD": "_uid"}, "invalid_lytics_id"),
    ({"HTTP_X_LYTICS_ID_FIELD": "no spaces", "HTTP_X_LYTICS_ID_VALUE": "x"},
     "invalid_lytics_id"),
    ({"HTTP_X_PAGE_URL": "https://x.example/" + "a" * 2100}, "invalid_page_url"),
])
def test_bad_manifest_headers_are_400_and_decide_nothing(edge, hero, headers, code) -> None:
    response = edge.manifest(**headers)
    assert response.status_code == 400, response.content
    assert response.json()["code"] == code and response.json()["message"]
    assert stored_count() == (0, 0, 0, 0)


def test_live_attributes_and_lytics_id_are_accepted(edge, hero) -> None:
    response = edge.manifest(HTTP_X_LIVE_ATTRIBUTES=json.dumps({"plan": "pro", "age": 40}),
                             HTTP_X_LYTICS_ID_FIELD="_uid", HTTP_X_LYTICS_ID_VALUE="seer-9")
    assert response.status_code == 200
    assert response.json()["experiences"][0]["activeVariantShortUid"] in ("0", "1")


def test_wrong_methods_are_405(edge, hero) -> None:
    assert edge.send("post", "manifest", {}).status_code == 405
    response = edge.client.get("/personalize/events", **edge.headers())
    assert response.status_code == 405 and response["Allow"] == "POST"
    assert edge.send("post", "user-attributes", {}).status_code == 405


def test_cors_preflight_allows_the_sdk_headers_and_exposes_the_user_uid(client, edge,
                                                                       hero) -> None:
    preflight = client.options(
        "/personalize/events", HTTP_ORIGIN="https://shop.example",
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST",
        HTTP_ACCESS_CONTROL_REQUEST_HEADERS="x-project-uid,x-cs-personalize-user-uid,"
                                            "x-user-agent,x-live-attributes")
    assert preflight.status_code == 200
    allowed = preflight["Access-Control-Allow-Headers"].lower()
    for header in ("x-project-uid", "x-cs-personalize-user-uid", "x-user-agent"):
        assert header in allowed
    response = edge.manifest(HTTP_ORIGIN="https://shop.example")
    assert response["Access-Control-Allow-Origin"] == "*"
    assert "X-CS-Personalize-User-Uid" in response["Access-Control-Expose-Headers"]


# --------------------------------------------------------------------------- user attributes


def test_user_attributes_are_stored_as_an_identify_and_processed(edge, account, hero) -> None:
    edge.user = "user-1"
    response = edge.send("patch", "user-attributes",
                         {"email": "Mia@Example.com", "plan": "pro"},
                         HTTP_X_PAGE_URL="https://shop.example/p")
    assert response.status_code == 200 and response.json() == {"success": True}
    [raw] = RawEvent.objects.filter(account=account)
    assert (raw.type, raw.anonymous_id, raw.stream, raw.source) == (
        "identify", "user-1", "default", "personalize")
    assert raw.message["traits"] == {"email": "Mia@Example.com", "plan": "pro"}
    assert raw.message["context"]["page"] == {"url": "https://shop.example/p"}
    run(account)
    profile = find_profile(account, "email", "mia@example.com")
    assert profile is not None and profile.field_values["_uid"] == ["user-1"]


def test_gzipped_bodies_are_accepted(edge, account, hero) -> None:
    edge.user = "user-1"
    body = gzip.compress(json.dumps({"plan": "pro"}).encode())
    response = edge.client.patch("/personalize/user-attributes", data=body, content_type=TEXT,
                                 HTTP_CONTENT_ENCODING="gzip", **edge.headers())
    assert response.status_code == 200
    assert RawEvent.objects.get().message["traits"] == {"plan": "pro"}


@pytest.mark.parametrize(("body", "user", "code"), [
    ("[1, 2]", "user-1", "invalid_body"),
    ('"text"', "user-1", "invalid_body"),
    ("{not json", "user-1", "invalid_json"),
    (b"\xff\xfe", "user-1", "invalid_encoding"),
    (json.dumps({f"a{i}": i for i in range(101)}), "user-1", "invalid_body"),
    ('{"plan": "pro"}', None, "missing_user_uid"),
    ('{"plan": "pro"}', "  ", "missing_user_uid"),
])
def test_bad_user_attributes_are_400_and_store_nothing(edge, account, hero, body, user,
                                                       code) -> None:
    edge.user = user
    response = edge.send("patch", "user-attributes", body)
    assert response.status_code == 400
    assert response.json()["code"] == code
    assert stored_count() == (0, 0, 0, 0)
    failed = FailedEvent.objects.get(account=account)
    assert (failed.source, failed.code) == ("personalize", code)


def test_a_body_over_64_kb_is_refused(edge, hero) -> None:
    edge.user = "user-1"
    response = edge.send("patch", "user-attributes", {"blob": "x" * 70_000})
    assert response.status_code == 400 and response.json()["code"] == "body_too_large"
    assert stored_count() == (0, 0, 0, 0)


# --------------------------------------------------------------------------- events


def test_impressions_and_events_from_the_sdk(edge, account, hero) -> None:
    variant, uid = assigned(account, "user-1")
    wrong = other_variant(account, "hero", variant)
    edge.user = "user-1"
    response = edge.send("post", "events", [
        {"experienceShortUid": "a", "variantShortUid": uid, "type": "IMPRESSION"},
        {"experienceShortUid": "a", "variantShortUid": uid, "type": "IMPRESSION"},
        {"experienceShortUid": "a", "variantShortUid": wrong.uid, "type": "IMPRESSION"},
    ])
    assert response.status_code == 200
    assert response.json() == {"success": True, "impressions": {
        "counted": 1, "repeat": 1, "ignored_not_assigned": 1}}
    impression = Impression.objects.get(experience=hero)
    assert (impression.visitor, impression.variant.key, impression.count) == (
        "user-1", variant, 2)
    assert DataQualityWarning.objects.get(experience=hero).code == "impression_not_assigned"

    response = edge.send("post", "events", [{"eventKey": "booked", "type": "EVENT"}])
    assert response.status_code == 200
    [raw] = RawEvent.objects.filter(account=account)
    assert (raw.type, raw.event, raw.anonymous_id) == ("track", "booked", "user-1")
    run(account)
    conversion = Conversion.objects.get(experience=hero)
    assert (conversion.visitor, conversion.variant.key, conversion.count) == (
        "user-1", variant, 1)


def test_an_invalid_event_is_refused_alone(edge, account, hero) -> None:
    edge.user = "user-1"
    response = edge.send("post", "events", [
        {"eventKey": "booked", "type": "EVENT"},
        {"eventKey": "", "type": "EVENT"},
        {"type": "CLICK"},
        "text",
    ])
    assert response.status_code == 200
    assert [r["position"] for r in response.json()["rejected"]] == [2, 3, 4]
    assert RawEvent.objects.get().event == "booked"
    assert FailedEvent.objects.filter(account=account, source="personalize").count() == 3


@pytest.mark.parametrize(("body", "user", "code"), [
    ('{"eventKey": "booked", "type": "EVENT"}', "user-1", "invalid_body"),
    ("[]", "user-1", "invalid_body"),
    (json.dumps([{"eventKey": "e", "type": "EVENT"}] * 101), "user-1", "invalid_body"),
    ("[{]", "user-1", "invalid_json"),
    ('[{"type": "IMPRESSION", "experienceShortUid": "a"}]', "user-1", "invalid_event"),
    ('[{"type": "EVENT", "eventKey": "booked"}]', None, "missing_user_uid"),
])
def test_bad_event_requests_are_400_and_change_nothing(edge, hero, body, user, code) -> None:
    edge.user = user
    response = edge.send("post", "events", body)
    assert response.status_code == 400
    assert response.json()["code"] == code
    assert stored_count() == (0, 0, 0, 0)


# --------------------------------------------------------------------------- merge


def test_merge_moves_the_visitor_and_merges_the_profiles(edge, account, hero) -> None:
    variant, uid = assigned(account, "anon-1")
    edge.user = "anon-1"
    edge.send("post", "events", [
        {"experienceShortUid": "a", "variantShortUid": uid, "type": "IMPRESSION"}])
    edge.send("patch", "user-attributes", {"plan": "pro"})
    run(account)
    edge.user = None  # the SDK sends no user header on merge
    response = edge.send("post", "user-attributes/actions/merge",
                         {"sourceUserUid": "anon-1", "targetUserUid": "user-42"})
    assert response.status_code == 200 and response.json() == {"success": True}
    assert Assignment.objects.get(experience=hero).visitor == "user-42"
    assert Impression.objects.get(experience=hero).visitor == "user-42"
    alias = RawEvent.objects.get(type="alias")
    assert (alias.message["previousId"], alias.message["userId"]) == ("anon-1", "user-42")
    run(account)
    [profile] = live_profiles(account)
    assert sorted(profile.field_values["_uid"]) == ["anon-1", "user-42"]
    # the logged-in visitor keeps the variant, and converts on it
    edge.user = "user-42"
    manifest = edge.manifest().json()["experiences"]
    assert manifest == [{"shortUid": "a", "activeVariantShortUid": uid}]
    edge.send("post", "events", [{"eventKey": "booked", "type": "EVENT"}])
    run(account)
    assert Conversion.objects.get(experience=hero).visitor == "user-42"
    assert Conversion.objects.get(experience=hero).variant.key == variant


def test_merge_into_a_visitor_with_its_own_assignment_keeps_the_targets(edge, account,
                                                                       hero) -> None:
    assigned(account, "anon-1")
    target_variant, _uid = assigned(account, "user-42")
    response = edge.send("post", "user-attributes/actions/merge",
                         {"sourceUserUid": "anon-1", "targetUserUid": "user-42"})
    assert response.status_code == 200
    [kept] = Assignment.objects.filter(experience=hero)
    assert (kept.visitor, kept.variant.key) == ("user-42", target_variant)


@pytest.mark.parametrize(("body", "code"), [
    ('{"sourceUserUid": "anon-1"}', "missing_user_uid"),
    ('{"sourceUserUid": "anon-1", "targetUserUid": 42}', "missing_user_uid"),
    ('{"sourceUserUid": "a\\u0000b", "targetUserUid": "user-42"}', "invalid_user_uid"),
    ('["anon-1", "user-42"]', "invalid_body"),
    ("nope", "invalid_json"),
])
def test_bad_merges_are_400_and_move_nothing(edge, account, hero, body, code) -> None:
    assigned(account, "anon-1")
    before = stored_count()
    response = edge.send("post", "user-attributes/actions/merge", body)
    assert response.status_code == 400
    assert response.json()["code"] == code
    assert stored_count() == before
    assert Assignment.objects.get(experience=hero).visitor == "anon-1"


def test_conversions_need_the_window(edge, account, hero) -> None:
    """An SDK event 31 days after the impression is stored but is no conversion."""
    _variant, uid = assigned(account, "user-1")
    edge.user = "user-1"
    edge.send("post", "events", [
        {"experienceShortUid": "a", "variantShortUid": uid, "type": "IMPRESSION"}])
    Impression.objects.update(first_at=Impression.objects.get().first_at - timedelta(days=31))
    edge.send("post", "events", [{"eventKey": "booked", "type": "EVENT"}])
    run(account)
    assert not Conversion.objects.exists()
