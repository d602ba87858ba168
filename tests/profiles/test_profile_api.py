"""The profile API (PROTOCOLS.md §5) over profiles made by the real collection paths and the
processing pipeline: the issue's "Done when" journey read through the API, PII masking by
role, search, timeline, identity explanation, merged-away ids, other accounts, GDPR delete."""

from __future__ import annotations

import json

import pytest

from cdp_site.models import AuditEvent
from profiles.models import (
    EventWarning,
    Identifier,
    IdentityLog,
    PrivacyRequest,
    Profile,
    ProfileEvent,
    RawEvent,
)
from tests.conftest import make_account, make_token, token_client
from tests.profiles.people import (
    COOKIE,
    EMAIL,
    Journey,
    install_schema,
    known_person,
    role_without_pii,
)
from tests.profiles.privacy_helpers import q_sync as run_tasks_at_once
from tests.profiles.processing import run, send

pytestmark = pytest.mark.django_db


@pytest.fixture
def q_sync(monkeypatch):
    run_tasks_at_once(monkeypatch)

A, B = "ann@example.com", "bob@example.com"
X, Y, Z = "cookie-x", "cookie-y", "cookie-z"


def api(account, *roles):
    _token, secret = make_token(account, roles)
    return token_client(secret)


def get_profile(client, field, value):
    return client.get(f"/api/v1/profiles/{field}/{value}")


# --------------------------------------------------------------------------- the journey


def test_done_when_journey_read_through_the_api(account):
    """A page view with taxonomy=cuisine fills taxonomy on an anonymous profile; identify on the
    same cookie lands on that profile, found by email with its earlier behaviour; a CRM record
    joins by email."""
    journey = Journey(account)
    client = api(account, "data_manager")

    journey.page_view()
    anonymous = get_profile(client, "_uid", COOKIE)
    assert anonymous.status_code == 200, anonymous.content
    body = anonymous.json()
    assert body["fields"] == {"_uid": [COOKIE], "taxonomy": "cuisine"}
    assert body["identifiers"] == {"_uid": [COOKIE]}
    assert get_profile(client, "email", EMAIL).status_code == 404

    journey.identify()
    by_email = get_profile(client, "email", EMAIL).json()
    assert by_email["id"] == body["id"]
    assert by_email["fields"]["taxonomy"] == "cuisine"  # its earlier behaviour
    assert by_email["identifiers"] == {"email": [EMAIL], "_uid": [COOKIE]}
    timeline = client.get(f"/api/v1/profiles/{body['id']}/events").json()["results"]
    assert [e["event"] for e in timeline] == ["identify", "page"]

    journey.crm_record()
    profile = get_profile(client, "email", EMAIL).json()
    assert profile["id"] == body["id"]
    assert profile["fields"] == {
        "email": EMAIL, "_uid": [COOKIE], "first_name": "Mason", "loyalty_tier": "gold",
        "phone": "+1 555 123 4539", "preferred_activities": ["cooking", "hiking"],
        "taxonomy": "cuisine"}
    assert list(profile["fields"])[:2] == ["email", "_uid"]  # identifiers first, by rank
    assert profile["audiences"] == []
    assert set(profile) >= {"id", "fields", "identifiers", "audiences", "updated_at",
                            "first_seen", "last_seen", "health"}
    assert profile["health"] == {"conflicts": 0, "compactions": 0, "identifier_count": 2,
                                 "identifier_limit": 50, "event_count": 3,
                                 "size": Profile.objects.get(pk=body["id"]).size}
    assert profile["pii_masked"] is False
    assert profile["first_seen"] <= profile["last_seen"]
    events = client.get(f"/api/v1/profiles/{body['id']}/events").json()["results"]
    assert [(e["stream"], e["event"]) for e in events] == [
        ("crm_users", ""), ("default", "identify"), ("default", "page")]
    assert events[0]["properties"]["loyalty_tier"] == "gold"


def test_unknown_identifier_is_not_found(account):
    install_schema(account)
    client = api(account, "admin")
    response = get_profile(client, "email", "nobody@example.com")
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"
    assert client.get("/api/v1/profiles/999999").json()["code"] == "not_found"
    assert client.get("/api/v1/profiles/999999/events").status_code == 404
    assert client.get("/api/v1/profiles/999999/identity").status_code == 404
    assert get_profile(client, "email", "null").status_code == 404  # never an identifier


def test_value_with_a_slash_and_a_plus_is_read_exactly(account):
    install_schema(account)
    send(account, {"_uid": "a/b+c d"}, stream="default")
    run(account)
    client = api(account, "admin")
    response = client.get("/api/v1/profiles/_uid/a%2Fb%2Bc%20d")
    assert response.status_code == 200
    assert response.json()["identifiers"] == {"_uid": ["a/b+c d"]}


# --------------------------------------------------------------------------- masking by role


def test_a_token_without_pii_view_gets_pii_masked_everywhere(account):
    journey = known_person(account)
    profile_id = journey.profile().pk
    client = api(account, role_without_pii())

    body = get_profile(client, "email", EMAIL).json()
    assert body["pii_masked"] is True
    assert body["fields"]["email"] == "m***@example.com"
    assert body["fields"]["phone"] == "+1-***-**39"
    assert body["fields"]["first_name"] == "M***"
    assert body["fields"]["_uid"] == [COOKIE]  # not PII
    assert body["fields"]["loyalty_tier"] == "gold"
    assert body["identifiers"] == {"email": ["m***@example.com"], "_uid": [COOKIE]}

    events = client.get(f"/api/v1/profiles/{profile_id}/events").content.decode()
    identity = client.get(f"/api/v1/profiles/{profile_id}/identity").content.decode()
    search = client.get("/api/v1/profiles/", {"q": EMAIL}).content.decode()
    for text in (json.dumps(body), events, identity, search):
        assert EMAIL not in text
        assert "4539" not in text and "Mason" not in text
    assert "m***@example.com" in events and "m***@example.com" in search
    assert json.loads(search)["results"][0]["id"] == profile_id


@pytest.mark.parametrize("role", ["data_manager", "user_search", "admin"])
def test_roles_with_pii_view_see_pii_unmasked(account, role):
    journey = known_person(account)
    client = api(account, role)
    body = get_profile(client, "email", EMAIL).json()
    assert body["pii_masked"] is False
    assert body["fields"]["email"] == EMAIL
    assert body["fields"]["phone"] == "+1 555 123 4539"
    assert body["identifiers"]["email"] == [EMAIL]
    events = client.get(f"/api/v1/profiles/{journey.profile().pk}/events").json()["results"]
    assert events[0]["properties"]["phone"] == "+1 555 123 4539"


def test_a_field_marked_pii_in_the_draft_is_masked_before_publishing(account):
    from profiles.models import Field
    from profiles.schema.drafts import save_field

    known_person(account)
    tier = Field.objects.for_account(account).get(name="loyalty_tier")
    save_field(account, instance=tier, is_pii=True)
    body = get_profile(api(account, role_without_pii()), "email", EMAIL).json()
    assert body["fields"]["loyalty_tier"] == "g***"


@pytest.mark.parametrize("role", ["marketer", "observer", "audience_manager"])
def test_roles_without_profile_view_are_refused(account, role):
    journey = known_person(account)
    client = api(account, role)
    pid = journey.profile().pk
    for response in (get_profile(client, "email", EMAIL), client.get("/api/v1/profiles/"),
                     client.get(f"/api/v1/profiles/{pid}"),
                     client.get(f"/api/v1/profiles/{pid}/events"),
                     client.get(f"/api/v1/profiles/{pid}/identity"),
                     client.delete(f"/api/v1/profiles/email/{EMAIL}")):
        assert response.status_code == 403, response.content
        assert response.json()["code"] == "permission_denied"
    assert Profile.objects.filter(pk=pid).exists()


def test_no_token_is_refused(account):
    from rest_framework.test import APIClient

    response = APIClient().get(f"/api/v1/profiles/email/{EMAIL}")
    assert response.status_code in (401, 403)


# --------------------------------------------------------------------------- accounts


def test_a_profile_of_another_account_is_not_found(account, q_sync,
                                                   django_capture_on_commit_callbacks):
    other = make_account("Globex")
    theirs = known_person(other).profile()
    client = api(account, "admin")
    install_schema(account)
    assert get_profile(client, "email", EMAIL).status_code == 404
    assert get_profile(client, "email", EMAIL).json()["code"] == "not_found"
    assert get_profile(client, "_uid", COOKIE).status_code == 404
    assert client.get(f"/api/v1/profiles/{theirs.pk}").status_code == 404
    assert client.get(f"/api/v1/profiles/{theirs.pk}/events").status_code == 404
    assert client.get(f"/api/v1/profiles/{theirs.pk}/identity").status_code == 404
    assert client.get("/api/v1/profiles/", {"q": EMAIL}).json()["results"] == []
    assert client.get("/api/v1/profiles/").json()["results"] == []
    # a delete request in this account, which finds no one (the same answer either way)
    result = _delete(client, f"/api/v1/profiles/email/{EMAIL}",
                     django_capture_on_commit_callbacks)
    assert result["found"] is False and result["profiles"] == 0
    assert Profile.objects.filter(pk=theirs.pk).exists()
    # ...and their own token finds it.
    assert get_profile(api(other, "admin"), "email", EMAIL).json()["id"] == theirs.pk


# --------------------------------------------------------------------------- merges


def _merged_pair(account):
    """{X} then {A} in separate runs: two profiles; then {A, X} merges them. The older
    profile (X's) survives; A's profile is merged away."""
    install_schema(account)
    send(account, {"_uid": X, "taxonomy": "travel"}, stream="default")
    run(account)
    send(account, {"email": A}, stream="default")
    run(account)
    cookie_profile = Profile.objects.get(identifiers__value=X)
    email_profile = Profile.objects.get(identifiers__value=A)
    send(account, {"email": A, "_uid": X}, stream="default")
    run(account)
    return cookie_profile.pk, email_profile.pk


def test_a_merged_away_profile_id_resolves_to_the_survivor(account):
    survivor, gone = _merged_pair(account)
    assert survivor < gone
    client = api(account, "data_manager")
    body = client.get(f"/api/v1/profiles/{gone}").json()
    assert body["id"] == survivor
    assert body["merged_profile_ids"] == [gone]
    assert body["identifiers"] == {"email": [A], "_uid": [X]}
    assert body["fields"]["taxonomy"] == "travel"
    assert get_profile(client, "email", A).json()["id"] == survivor
    events = client.get(f"/api/v1/profiles/{gone}/events").json()["results"]
    assert len(events) == 3  # the merged-away profile's event moved to the survivor


def test_identity_explains_the_merge_with_its_causing_event(account):
    survivor, gone = _merged_pair(account)
    story = api(account, "data_manager").get(f"/api/v1/profiles/{survivor}/identity").json()
    assert story["profile_id"] == survivor
    assert story["merged_profile_ids"] == [gone]
    [merge] = [e for e in story["log"] if e["kind"] == "merge"]
    assert (merge["profile_id"], merge["other_profile_id"]) == (survivor, gone)
    assert merge["field"] == "_uid" and merge["value"] == X
    assert "links them" in merge["reason"]
    causing = RawEvent.objects.get(pk=merge["raw_event_id"])
    assert causing.message == {"email": A, "_uid": X}
    assert merge["event"]["stream"] == "default"
    linked = {(i["field"], i["value"]): i for i in story["identifiers"]}
    assert set(linked) == {("email", A), ("_uid", X)}
    assert linked[("_uid", X)]["first_event"]["raw_event_id"] == RawEvent.objects.get(
        message={"_uid": X, "taxonomy": "travel"}).pk
    assert all(i["active"] for i in story["identifiers"])


def test_identity_shows_conflicts_on_both_profiles(account):
    """The issue's case: {A, X}, {A, Y}, {B, Z}, then {B, Y}: two profiles, Y stays with A, a
    conflict on each."""
    install_schema(account)
    send(account, {"email": A, "_uid": X}, {"email": A, "_uid": Y}, {"email": B, "_uid": Z},
         {"email": B, "_uid": Y}, stream="default")
    run(account)
    client = api(account, role_without_pii())
    a = get_profile(client, "email", A).json()
    b = get_profile(client, "email", B).json()
    assert (a["health"]["conflicts"], b["health"]["conflicts"]) == (1, 1)
    assert get_profile(client, "_uid", Y).json()["id"] == a["id"]
    for pid in (a["id"], b["id"]):
        [conflict] = client.get(f"/api/v1/profiles/{pid}/identity").json()["log"]
        assert conflict["kind"] == "conflict"
        assert (conflict["profile_id"], conflict["other_profile_id"]) == (b["id"], a["id"])
        assert conflict["value"] == Y and "email" in conflict["reason"]
        assert conflict["event"]["stream"] == "default"


# --------------------------------------------------------------------------- search, timeline


def test_search_by_any_identifier_value(account):
    known_person(account)
    send(account, {"email": A, "_uid": X}, {"email": B, "_uid": Y}, stream="default")
    run(account)
    client = api(account, "data_manager")

    def ids(**params):
        response = client.get("/api/v1/profiles/", params)
        assert response.status_code == 200, response.content
        return [p["id"] for p in response.json()["results"]]

    mason, ann, bob = (get_profile(client, "email", v).json()["id"] for v in (EMAIL, A, B))
    assert ids(q=EMAIL) == [mason]
    assert ids(q=COOKIE) == [mason]
    assert ids(q=f"  {X} ") == [ann]
    assert ids(q=X, field="email") == []
    assert ids(q=X, field="_uid") == [ann]
    assert ids(q="ann@") == [ann]  # an email prefix
    assert ids(q="cookie-") == sorted([ann, bob], reverse=True)  # newest last_seen first
    assert ids(q="an") == []  # prefixes from 3 characters
    assert ids(q="nobody") == []
    assert set(ids()) == {mason, ann, bob}  # no q: the most recently seen
    result = client.get("/api/v1/profiles/", {"q": EMAIL}).json()["results"][0]
    assert result["identifiers"] == {"email": [EMAIL], "_uid": [COOKIE]}
    assert result["event_count"] == 3


def test_search_without_pii_view_matches_pii_fields_exactly_only(account):
    """A prefix search on a masked field would spell the value out letter by letter."""
    install_schema(account)
    send(account, {"email": A, "_uid": X}, stream="default")
    run(account)
    masked = api(account, role_without_pii())
    assert len(masked.get("/api/v1/profiles/", {"q": A}).json()["results"]) == 1
    assert masked.get("/api/v1/profiles/", {"q": "ann@ex"}).json()["results"] == []
    assert len(masked.get("/api/v1/profiles/", {"q": "cookie"}).json()["results"]) == 1
    clear = api(account, "user_search")
    assert len(clear.get("/api/v1/profiles/", {"q": "ann@ex"}).json()["results"]) == 1


def test_search_pages_without_counting(account):
    install_schema(account)
    send(account, *({"_uid": f"page-{i}"} for i in range(5)), stream="default")
    run(account)
    client = api(account, "admin")
    first = client.get("/api/v1/profiles/", {"q": "page-", "limit": 2}).json()
    assert set(first) == {"limit", "next", "previous", "results"} and first["limit"] == 2
    assert len(first["results"]) == 2 and first["previous"] is None
    second = client.get(first["next"]).json()
    third = client.get(second["next"]).json()
    assert len(third["results"]) == 1 and third["next"] is None
    seen = [p["id"] for page in (first, second, third) for p in page["results"]]
    assert len(set(seen)) == 5


def test_timeline_is_newest_first_and_paginated(account):
    install_schema(account)
    send(account, *({"_uid": X, "taxonomy": f"t{i}"} for i in range(4)), stream="default")
    run(account)
    client = api(account, "user_search")
    pid = get_profile(client, "_uid", X).json()["id"]
    page = client.get(f"/api/v1/profiles/{pid}/events", {"limit": 3}).json()
    assert [e["properties"]["taxonomy"] for e in page["results"]] == ["t3", "t2", "t1"]
    rest = client.get(page["next"]).json()
    assert [e["properties"]["taxonomy"] for e in rest["results"]] == ["t0"]
    assert rest["next"] is None and rest["previous"]
    assert client.get(f"/api/v1/profiles/{pid}/events", {"limit": 0}).status_code == 200


# --------------------------------------------------------------------------- GDPR delete


def _delete(client, path, capture, **params):
    """DELETE a profile: a delete request, run (django-q2 in sync mode) once it commits."""
    query = "?" + "&".join(f"{k}={v}" for k, v in params.items()) if params else ""
    with capture(execute=True):
        response = client.delete(path + query)
    assert response.status_code == 202, response.content
    polled = client.get(f"/api/v1/privacy-requests/{response.json()['id']}/")
    assert polled.json()["state"] == "done", polled.content
    return polled.json()["result"]


def test_gdpr_delete_removes_the_person_and_records_it_without_their_identifiers(
        account, q_sync, django_capture_on_commit_callbacks):
    journey = known_person(account)
    profile = journey.profile()
    raw_ids = list(ProfileEvent.objects.filter(profile=profile)
                   .values_list("raw_event_id", flat=True))
    other = Journey(account, cookie="visitor-2", email=B)
    other.page_view()
    other.identify()
    client = api(account, "data_manager")

    result = _delete(client, f"/api/v1/profiles/email/{EMAIL}",
                     django_capture_on_commit_callbacks, suppress="false")
    assert result["found"] is True
    assert (result["profiles"], result["merged_profiles"], result["identifiers"],
            result["profile_events"], result["raw_events"]) == (1, 0, 2, 3, 3)
    assert get_profile(client, "email", EMAIL).status_code == 404
    assert get_profile(client, "_uid", COOKIE).status_code == 404
    assert not Profile.objects.filter(pk=profile.pk).exists()
    assert not Identifier.objects.filter(value__in=[EMAIL, COOKIE]).exists()
    assert not ProfileEvent.objects.filter(raw_event_id__in=raw_ids).exists()
    assert not RawEvent.objects.filter(id__in=raw_ids).exists()
    # the other person is untouched
    assert get_profile(client, "email", B).json()["fields"]["taxonomy"] == "cuisine"
    [entry] = AuditEvent.objects.for_account(account).filter(action="profile.deleted")
    assert entry.target_id == str(profile.pk)
    assert entry.changes["looked_up_by"] == "email"
    assert entry.changes["raw_events"] == 3
    assert EMAIL not in json.dumps(entry.changes) and COOKIE not in json.dumps(entry.changes)
    [made] = AuditEvent.objects.for_account(account).filter(action="privacy.requested")
    assert made.actor_token is not None

    # Without suppression, a later event with the same email makes a new, empty profile.
    journey.crm_record()
    again = get_profile(client, "email", EMAIL).json()
    assert again["id"] != profile.pk
    assert "taxonomy" not in again["fields"]


def test_gdpr_delete_takes_the_merged_away_profiles_and_cleans_conflict_values(
        account, q_sync, django_capture_on_commit_callbacks):
    survivor, gone = _merged_pair(account)
    send(account, {"email": B, "_uid": X}, stream="default")  # conflicts with the survivor
    run(account)
    bob = Profile.objects.get(identifiers__value=B)
    EventWarning.objects.create(account=account, raw_event_id=ProfileEvent.objects.filter(
        profile_id=survivor).first().raw_event_id, stream="default", code="x", message="m")
    result = _delete(api(account, "admin"), f"/api/v1/profiles/_uid/{X}",
                     django_capture_on_commit_callbacks)
    assert result["merged_profiles"] == 1
    assert not Profile.objects.filter(pk__in=[survivor, gone]).exists()
    conflict = IdentityLog.objects.get(kind="conflict")
    assert conflict.profile_id == bob.pk and conflict.other_id is None
    assert conflict.value == ""  # the deleted person's identifier is gone from Bob's log too
    assert Profile.objects.filter(pk=bob.pk).exists()


def test_gdpr_delete_needs_profiles_delete(account):
    known_person(account)
    for role in ("user_search", role_without_pii()):
        response = api(account, role).delete(f"/api/v1/profiles/email/{EMAIL}")
        assert response.status_code == 403, response.content
    assert get_profile(api(account, "admin"), "email", EMAIL).status_code == 200
    assert not AuditEvent.objects.filter(action="profile.deleted").exists()
    assert not PrivacyRequest.objects.exists()


def test_openapi_schema_documents_the_profile_api(account):
    response = api(account, "admin").get("/api/schema/", {"format": "json"})
    paths = json.loads(response.content)["paths"]
    assert "/api/v1/profiles/{field}/{value}" in paths
    assert {"get", "delete"} <= set(paths["/api/v1/profiles/{field}/{value}"])
    assert "/api/v1/profiles/{id}/identity/" in paths


def test_queries_do_not_grow_with_events_and_identifiers(account):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    install_schema(account)
    send(account, {"email": A, "_uid": X}, stream="default")
    send(account, *({"email": B, "_uid": f"c-{i}", "taxonomy": f"t{i}"} for i in range(30)),
         stream="default")
    run(account)
    client = api(account, "data_manager")
    ids = {v: get_profile(client, "email", v).json()["id"] for v in (A, B)}

    def count(url):
        with CaptureQueriesContext(connection) as ctx:
            assert client.get(url).status_code == 200
        return len(ctx.captured_queries)

    for template in ("/api/v1/profiles/email/{v}", "/api/v1/profiles/{id}/events",
                     "/api/v1/profiles/{id}/identity", "/api/v1/profiles/?q={v}"):
        count(template.format(v=A, id=ids[A]))  # once to warm per-process caches
        small, big = (count(template.format(v=v, id=ids[v])) for v in (A, B))
        assert small == big, template
