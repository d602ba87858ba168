"""Identity resolution (DESIGN.md, "Identity resolution, precisely"): the worked examples, the
issue's conflict case, merges, compaction and invalid identifier values, through the pipeline
(raw events stored by collect, processed by process_pending)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from profiles.models import EventWarning, IdentityLog, Profile, ProfileEvent
from profiles.processing.identity import find_profile, identifier_problem, surviving_profile
from tests.profiles.processing import (
    T0,
    identifiers,
    identity_schema,
    live_profiles,
    profile_with,
    run,
    send,
)

A, B = "a@example.com", "b@example.com"
X, Y, Z = "cookie-x", "cookie-y", "cookie-z"

pytestmark = pytest.mark.django_db


@pytest.fixture
def account(account):
    identity_schema(account)
    return account


def test_second_email_does_not_merge_profiles(account):
    """{A, X}, {A, Y}, {B, Z}, {B, Y}: two profiles {A, X, Y} and {B, Z}; the last event's data
    lands on B's profile; Y stays with A; one conflict on each."""
    send(account, {"email": A, "_uid": X, "page": "p1"}, {"email": A, "_uid": Y, "page": "p2"},
         {"email": B, "_uid": Z, "page": "p3"}, {"email": B, "_uid": Y, "page": "p4"})
    assert run(account) == 4
    profiles = live_profiles(account)
    assert [identifiers(p) for p in profiles] == [{A, X, Y}, {B, Z}]
    a, b = profiles
    assert a.field_values["page"] == "p2"
    assert b.field_values["page"] == "p4"
    assert b.field_values["pages"] == ["p3", "p4"]
    assert (a.conflicts, b.conflicts) == (1, 1)
    assert a.field_values["_uid"] == [X, Y]
    assert b.field_values["_uid"] == [Z]  # Y stays A's: not written into B's field
    conflict = IdentityLog.objects.get(kind="conflict")
    assert (conflict.profile_id, conflict.other_id, conflict.value) == (b.pk, a.pk, Y)
    assert "email" in conflict.reason
    assert Profile.objects.filter(merged_into__isnull=False).count() == 0


def test_the_same_events_one_batch_each_give_the_same_profiles(account):
    for message in ({"email": A, "_uid": X}, {"email": A, "_uid": Y}, {"email": B, "_uid": Z},
                    {"email": B, "_uid": Y}):
        send(account, message)
        run(account)
    assert [identifiers(p) for p in live_profiles(account)] == [{A, X, Y}, {B, Z}]
    assert [p.conflicts for p in live_profiles(account)] == [1, 1]


def test_anonymous_page_view_then_newsletter_form_is_one_profile(account):
    """{X} then {A, X}: one profile {A, X} holding the earlier page view."""
    send(account, {"_uid": X, "page": "cuisine"})
    run(account)
    anonymous = profile_with(account, X)
    send(account, {"email": A, "_uid": X, "page": "newsletter"})
    run(account)
    [profile] = live_profiles(account)
    assert profile.pk == anonymous.pk
    assert identifiers(profile) == {A, X}
    assert profile.field_values["pages"] == ["cuisine", "newsletter"]
    assert profile.event_count == 2
    assert ProfileEvent.objects.filter(profile=profile).count() == 2
    assert Profile.objects.count() == 1  # the profile made for A never needed a row


def test_another_person_on_the_same_device_gets_their_own_profile(account):
    """{A, X}, then {B, X}: two profiles {A, X} and {B}; the second event's data goes to B's."""
    send(account, {"email": A, "_uid": X, "page": "a"}, {"email": B, "_uid": X, "page": "b"})
    run(account)
    a, b = live_profiles(account)
    assert identifiers(a) == {A, X}
    assert identifiers(b) == {B}
    assert b.field_values["page"] == "b"
    assert "_uid" not in b.field_values  # X is A's: not copied into B's `_uid` field
    assert a.field_values["page"] == "a"
    assert a.field_values["_uid"] == [X]
    assert (a.conflicts, b.conflicts) == (1, 1)
    [event_b] = ProfileEvent.objects.filter(profile=b)
    assert event_b.properties == {"email": B, "page": "b", "pages": ["b"]}


def test_a_shared_tablet_cookie_stays_in_its_first_profile_only(account):
    """The issue's case: one tablet cookie seen with many emails is in the `_uid` field of the
    profile that owns it, not of every profile that used the tablet."""
    emails = [f"person{i}@example.com" for i in range(8)]
    send(account, *[{"email": e, "_uid": "tablet"} for e in emails])
    run(account)
    profiles = live_profiles(account)
    assert len(profiles) == 8
    holding = [p for p in profiles if "_uid" in p.field_values]
    assert [p.field_values["_uid"] for p in holding] == [["tablet"]]
    assert identifiers(holding[0]) == {emails[0], "tablet"}


def test_a_value_refused_by_capacity_is_not_written_into_its_field(account):
    """An unattached value (a conflict with the phone the profile holds, capacity 1) is not
    the profile's: the `phone` field keeps the profile's own; the rest of the event applies."""
    from profiles.schema.drafts import save_field, save_mapping
    from profiles.schema.versions import publish

    phone = save_field(account, name="phone", type="string", merge_operator="latest",
                       is_identifier=True, identifier_rank=3, identifier_capacity=1)
    save_mapping(account, field=phone, stream="web", expression="phone")
    publish(account)
    send(account, {"email": A, "phone": "+3361", "page": "one"})
    run(account)
    send(account, {"email": A, "phone": "+3362", "_uid": X, "page": "two"})
    run(account)
    [profile] = live_profiles(account)
    assert identifiers(profile) == {A, "+3361", X}
    assert profile.field_values["phone"] == "+3361"
    assert profile.field_values["page"] == "two"
    assert profile.field_values["_uid"] == [X]
    assert profile.conflicts == 1
    assert IdentityLog.objects.get(kind="conflict").value == "+3362"


def test_two_cookies_linked_by_an_event_are_one_profile(account):
    """{X, Y}, then {Y, Z}: one profile {X, Y, Z}."""
    send(account, {"_uid": [X, Y]}, {"_uid": [Y, Z]})
    run(account)
    [profile] = live_profiles(account)
    assert identifiers(profile) == {X, Y, Z}


def test_an_event_linking_two_profiles_merges_them_and_the_older_survives(account):
    send(account, {"_uid": X, "page": "one"})
    run(account)
    send(account, {"_uid": Y, "page": "two"})
    run(account)
    older, newer = profile_with(account, X), profile_with(account, Y)
    assert older.pk < newer.pk
    send(account, {"email": A, "_uid": [X, Y], "page": "three"})
    run(account)
    [survivor] = live_profiles(account)
    assert survivor.pk == older.pk
    assert identifiers(survivor) == {A, X, Y}
    assert survivor.field_values["pages"] == ["one", "three", "two"]
    assert survivor.event_count == 3
    assert ProfileEvent.objects.filter(profile=survivor).count() == 3
    newer.refresh_from_db()
    assert newer.merged_into_id == survivor.pk
    assert newer.field_values == {}
    assert surviving_profile(account, newer.pk) == survivor
    merge = IdentityLog.objects.get(kind="merge")
    assert (merge.profile_id, merge.other_id) == (survivor.pk, newer.pk)
    assert merge.raw_event_id is not None


def test_merge_chains_resolve_to_the_last_survivor(account):
    send(account, {"_uid": X})
    run(account)
    send(account, {"_uid": Y})
    run(account)
    send(account, {"_uid": Z})
    run(account)
    first, _second, third = (profile_with(account, v) for v in (X, Y, Z))
    send(account, {"_uid": [Y, Z]})  # third merges into second
    run(account)
    send(account, {"_uid": [X, Y]})  # second merges into first
    run(account)
    assert surviving_profile(account, third.pk) == first
    third.refresh_from_db()
    assert third.merged_into_id == first.pk


def test_an_identifier_past_its_capacity_drops_the_oldest_seen_value(account):
    from profiles.models import Field
    from profiles.schema.drafts import save_field
    from profiles.schema.versions import publish

    uid = Field.objects.get(account=account, name="_uid")
    save_field(account, instance=uid, identifier_capacity=2)
    publish(account)
    send(account, {"email": A, "_uid": "c1"}, {"email": A, "_uid": "c2"},
         {"email": A, "_uid": "c3"})
    run(account)
    [profile] = live_profiles(account)
    assert identifiers(profile) == {A, "c2", "c3"}
    assert profile.compactions == 1
    log = IdentityLog.objects.get(kind="compaction")
    assert (log.profile_id, log.field, log.value) == (profile.pk, "_uid", "c1")
    assert find_profile(account, "_uid", "c1") is None
    # an old cookie that comes back attaches again, dropping the now oldest-seen one
    send(account, {"email": A, "_uid": "c1"}, at=profile.last_seen.replace(year=2027))
    run(account)
    assert identifiers(profile) == {A, "c3", "c1"}


def test_a_merge_past_the_identifier_limit_compacts_the_oldest_cookies(account):
    """T = 3: {c1, c2} and {c3, c4} linked by {c1, c3} merge, and the oldest-seen cookie not
    in the linking event goes (as attaching does), recorded on the survivor."""
    account.max_identifiers_per_profile = 3
    account.save()
    send(account, {"_uid": ["c1", "c2"]}, {"_uid": ["c3", "c4"]})
    run(account)
    first = profile_with(account, "c1")
    send(account, {"_uid": ["c1", "c3"]})
    run(account)
    [profile] = live_profiles(account)
    assert profile.pk == first.pk
    assert identifiers(profile) == {"c1", "c3", "c4"}
    assert (profile.identifier_count, profile.compactions, profile.conflicts) == (3, 1, 0)
    log = IdentityLog.objects.get(kind="compaction")
    assert (log.profile_id, log.value) == (profile.pk, "c2")
    assert find_profile(account, "_uid", "c2") is None


def test_a_merge_whose_strong_identifiers_alone_pass_the_limit_is_a_conflict(account):
    """Only the fields compaction never drops (all but the weakest-ranked, the cookie) can
    refuse a merge: two profiles of two user ids each, T = 3."""
    from profiles.schema.drafts import save_field, save_mapping
    from profiles.schema.versions import publish

    user_id = save_field(account, name="user_id", type="[]string", merge_operator="merge",
                         is_identifier=True, identifier_rank=1, identifier_capacity=5)
    save_mapping(account, field=user_id, stream="web", expression="user_id")
    publish(account)
    account.max_identifiers_per_profile = 3
    account.save()
    send(account, {"user_id": ["u1", "u2"], "_uid": X}, {"user_id": ["u3", "u4"]})
    run(account)
    send(account, {"user_id": ["u1", "u3"]})
    run(account)
    profiles = live_profiles(account)
    assert [identifiers(p) for p in profiles] == [{"u1", "u2", X}, {"u3", "u4"}]
    assert [p.conflicts for p in profiles] == [1, 1]
    reason = IdentityLog.objects.get(kind="conflict").reason
    assert "4 identifiers" in reason and "limit is 3" in reason
    assert profiles[0].field_values["user_id"] == ["u1", "u2"]  # u3 is not the first's


def test_fifty_cookies_then_sign_in_keeps_the_49_most_recently_seen(account):
    """DESIGN.md: 50 cookies on an anonymous profile p, then {A, X1} where X1 is one of them,
    and A's profile holds 3 cookies: one profile holding A and the 49 most recently seen
    cookies; the compaction is recorded."""
    assert account.max_identifiers_per_profile == 50
    earlier = T0 - timedelta(days=1)
    send(account, *[{"email": A, "_uid": f"a{i}"} for i in range(3)], at=earlier)
    run(account)
    cookies = [f"p{i:02}" for i in range(50)]  # p00 first seen, then one a second
    send(account, *[{"_uid": ["p00", c]} for c in cookies[1:]])
    run(account)
    anonymous = profile_with(account, "p00")
    assert identifiers(anonymous) == set(cookies)
    send(account, {"email": A, "_uid": "p00", "page": "sign-in"}, at=T0 + timedelta(hours=2))
    run(account)
    [profile] = live_profiles(account)
    # X1 (p00) is seen now; the 3 cookies of A's profile and p01 are the oldest seen
    assert identifiers(profile) == {A, "p00", *cookies[2:]}
    assert profile.identifier_count == 50
    assert profile.compactions == 4
    assert profile.conflicts == 0
    dropped = set(IdentityLog.objects.filter(kind="compaction").values_list("value", flat=True))
    assert dropped == {"a0", "a1", "a2", "p01"}
    assert profile.field_values["page"] == "sign-in"


def test_an_anonymous_visitor_with_a_full_set_of_cookies_can_sign_in(account):
    """The issue's case: a visitor with 50 cookies signs in with a new email: their profile
    takes the email (one old cookie compacted) instead of a conflict and a second profile."""
    cookies = [f"c{i:02}" for i in range(50)]
    send(account, *[{"_uid": ["c00", c]} for c in cookies[1:]])
    run(account)
    anonymous = profile_with(account, "c00")
    send(account, {"email": A, "_uid": "c25"}, at=T0 + timedelta(hours=2))
    run(account)
    [profile] = live_profiles(account)
    assert profile.pk == anonymous.pk
    assert find_profile(account, "email", A) == profile
    assert profile.identifier_count == 50
    assert (profile.conflicts, profile.compactions) == (0, 1)
    assert identifiers(profile) == {A, *cookies} - {"c00"}


def test_attaching_past_the_identifier_limit_compacts_instead_of_refusing(account):
    account.max_identifiers_per_profile = 3
    account.save()
    send(account, {"email": A, "_uid": "c1"}, {"email": A, "_uid": "c2"},
         {"email": A, "_uid": "c3"})
    run(account)
    [profile] = live_profiles(account)
    assert identifiers(profile) == {A, "c2", "c3"}
    assert profile.identifier_count == 3


@pytest.mark.parametrize("bad", ["", "   ", "null", "undefined", "0", "x" * 257, None])
def test_bad_identifier_values_are_ignored_and_recorded(account, bad):
    send(account, {"email": A, "_uid": bad, "page": "kept"} if bad is not None
         else {"email": A, "_uid": None, "page": "kept"})
    run(account)
    [profile] = live_profiles(account)
    assert identifiers(profile) == {A}
    assert profile.field_values["page"] == "kept"
    if bad not in ("", "   ", None):  # empty values are "no value" before they are identifiers
        warning = EventWarning.objects.get(account=account)
        assert (warning.code, warning.field) == ("invalid_identifier", "_uid")


def test_a_bad_value_as_the_only_identifier_creates_no_profile(account):
    send(account, {"_uid": "undefined", "page": "lost"})
    run(account)
    assert live_profiles(account) == []
    codes = set(EventWarning.objects.values_list("code", flat=True))
    assert codes == {"invalid_identifier", "no_identifier"}


def test_identifier_problem_names_the_reason():
    assert identifier_problem("a@example.com") is None
    assert identifier_problem("UNDEFINED") is not None
    assert identifier_problem("é" * 129) == "is longer than 256 bytes"
    assert identifier_problem("é" * 128) is None
    assert identifier_problem(0) is not None


def test_find_profile_by_any_identifier(account):
    send(account, {"email": A, "_uid": X})
    run(account)
    profile = find_profile(account, "email", A)
    assert profile is not None
    assert find_profile(account, "_uid", X) == profile
    assert find_profile(account, "email", B) is None
    assert find_profile(account, "email", "undefined") is None


def test_identifiers_never_cross_accounts(account, other_account):
    identity_schema(other_account)
    send(account, {"email": A, "_uid": X})
    send(other_account, {"email": A, "_uid": X})
    run(account)
    run(other_account)
    mine, theirs = find_profile(account, "email", A), find_profile(other_account, "email", A)
    assert mine is not None and theirs is not None and mine.pk != theirs.pk


# --------------------------------------------------------------------------- through HTTP


def test_through_http_a_shared_device_and_a_sign_in_with_a_full_set_of_cookies(account):
    """Through the Segment-spec API and the profile API, with the installed Lytics schema:
    another person's identify on a shared device leaves the device's cookie out of their
    `_uid`; an anonymous visitor with 50 cookies who signs in gets the email on their profile."""
    from django.test import Client

    from profiles.processing.pipeline import process_pending
    from profiles.schema.lytics import install_lytics_schema
    from tests.conftest import make_account, make_token, token_client
    from tests.profiles.conftest import basic_auth, make_write_key

    other = make_account("Lytics", "lytics-http")
    install_lytics_schema(other)
    _key, secret = make_write_key(other)
    _token, token = make_token(other, ["data_manager"])
    api, sender = token_client(token), Client()

    def post(path, body):
        response = sender.post(path, data=body, content_type="application/json",
                               HTTP_AUTHORIZATION=basic_auth(secret))
        assert response.status_code == 200, response.content

    def fields(email):
        response = api.get(f"/api/v1/profiles/email/{email}")
        assert response.status_code == 200, response.content
        return response.json()["fields"]

    post("/v1/identify", {"anonymousId": "tablet", "traits": {"email": A}})
    post("/v1/identify", {"anonymousId": "tablet", "traits": {"email": B}})
    post("/v1/batch", {"batch": [{"type": "alias", "anonymousId": f"c{i:02}",
                                  "previousId": "c00"} for i in range(1, 50)]})
    post("/v1/identify", {"anonymousId": "c07", "traits": {"email": "c@example.com"}})
    process_pending(account_id=other.pk)
    assert fields(A)["_uid"] == ["tablet"]
    assert "_uid" not in fields(B)
    signed_in = fields("c@example.com")
    assert len(signed_in["_uid"]) == 50  # the field keeps its 50 values; lookups drop one
    health = api.get("/api/v1/profiles/email/c@example.com").json()["health"]
    assert (health["identifier_count"], health["compactions"], health["conflicts"]) == (50, 1, 0)
