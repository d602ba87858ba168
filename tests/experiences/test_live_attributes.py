"""Live attributes target the decision they come with (experiences.decide): decide's
``attributes``, OFREP's context attributes, Personalize's ``X-Live-Attributes``. Fields of the
live schema, typed as the field, overlay the visitor's stored values for the audiences the
experiences target; nothing is written."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from audiences.models import Audience, AudienceMembership, MembershipChange
from cdp_site.models import Account
from experiences.models import Assignment, Experience
from profiles.models import Profile, RawEvent
from profiles.schema.drafts import save_field, save_mapping
from profiles.schema.versions import publish
from tests.conftest import make_write_key
from tests.experiences.decide_helpers import make_experience, make_visitor, set_consent

pytestmark = pytest.mark.django_db
TEXT = "text/plain;charset=UTF-8"


def _audience(account: Account, slug: str, rule: dict[str, Any], *,
              api_accessible: bool = True) -> Audience:
    return Audience.objects.create(account=account, slug=slug, name=slug.title(), rule=rule,
                                   api_accessible=api_accessible,
                                   status=Audience.Status.READY)


@pytest.fixture
def key(account: Account) -> str:
    """A published schema (taxonomy: string, age: int), audiences over it, and two
    experiences: a segmented banner (cuisine, then foodies: an include of cuisine) and an
    A/B test for adults."""
    uid = save_field(account, name="_uid", type="[]string", merge_operator="merge",
                     capacity=50, is_identifier=True, identifier_rank=1,
                     identifier_capacity=50)
    save_field(account, name="taxonomy", type="string", merge_operator="latest")
    save_field(account, name="age", type="int", merge_operator="latest")
    save_mapping(account, field=uid, stream="default",
                 expression="oneof(`_uid`, anonymousId)")
    publish(account)
    cuisine = _audience(account, "cuisine", {"field": "taxonomy", "op": "=", "value": "cuisine"})
    foodies = _audience(account, "foodies", {"or": [
        {"audience": "cuisine", "op": "include"},
        {"field": "taxonomy", "op": "=", "value": "baking"}]})
    adults = _audience(account, "adults", {"field": "age", "op": ">=", "value": 18})
    make_experience(account, "banner", ["base", "cuisine", "foodies"], uid="b1",
                    type=Experience.Type.SEGMENTED,
                    segments={"cuisine": (cuisine, 1), "foodies": (foodies, 2)})
    make_experience(account, "hero", ["control", "big"], weights=[0.0, 1.0], uid="h1",
                    target_audiences=[adults])
    return make_write_key(account)[1]


def decide(key: str, body: dict[str, Any]) -> dict[str, Any]:
    response = Client().post("/api/v1/decide", json.dumps(body),
                             content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {key}")
    assert response.status_code == 200, response.content
    return response.json()


def chosen(answer: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {d["experience"]: (d["variant"], d["detail"]) for d in answer["decisions"]}


def written() -> tuple[int, int, int, int]:
    return (Profile.objects.count(), AudienceMembership.objects.count(),
            MembershipChange.objects.count(), RawEvent.objects.count())


# --------------------------------------------------------------------------- POST /api/v1/decide


def test_an_attribute_places_a_visitor_without_a_profile_in_an_audience(key: str) -> None:
    assert chosen(decide(key, {"uid": "new-1"})) == {
        "banner": ("base", "no_segment"), "hero": ("control", "not_targeted")}
    answer = decide(key, {"uid": "new-1", "attributes": {"taxonomy": "Cuisine", "age": 30}})
    assert answer["known"] is False
    assert answer["audiences"] == ["adults", "cuisine", "foodies"]
    assert chosen(answer) == {"banner": ("cuisine", "audience:cuisine"),
                              "hero": ("big", "assigned")}
    assert written() == (0, 0, 0, 0)  # no profile, no membership, no event


def test_an_included_audience_is_evaluated_first(key: str) -> None:
    answer = decide(key, {"uid": "new-2", "attributes": {"taxonomy": "baking"}})
    assert answer["audiences"] == ["foodies"]
    assert chosen(answer)["banner"] == ("foodies", "audience:foodies")


def test_attributes_overlay_a_known_visitors_values_for_this_decision_only(
        account: Account, key: str) -> None:
    cuisine = Audience.objects.get(slug="cuisine")
    foodies = Audience.objects.get(slug="foodies")
    profile = make_visitor(account, "known-1", audiences=[cuisine, foodies])
    Profile.objects.filter(pk=profile.pk).update(field_values={"taxonomy": "cuisine", "age": 12})
    before = written()
    assert chosen(decide(key, {"uid": "known-1"}))["banner"] == ("cuisine", "audience:cuisine")
    answer = decide(key, {"uid": "known-1", "attributes": {"taxonomy": "travel"}})
    assert answer["known"] is True and answer["audiences"] == []
    assert chosen(answer) == {"banner": ("base", "no_segment"),
                              "hero": ("control", "not_targeted")}
    # the stored age (12) still counts; a numeric string fits the int field
    answer = decide(key, {"uid": "known-1", "attributes": {"age": "40"}})
    assert answer["audiences"] == ["adults", "cuisine", "foodies"]
    assert chosen(answer)["hero"] == ("big", "assigned")
    assert written() == before
    profile.refresh_from_db()
    assert profile.field_values == {"taxonomy": "cuisine", "age": 12}
    assert set(AudienceMembership.objects.filter(profile=profile)
               .values_list("audience__slug", flat=True)) == {"cuisine", "foodies"}


def test_an_audience_whose_rule_reads_no_given_attribute_keeps_the_stored_membership(
        account: Account, key: str) -> None:
    cuisine = Audience.objects.get(slug="cuisine")
    profile = make_visitor(account, "known-2", audiences=[cuisine])
    # the stored membership disagrees with the stored value: only a rule reading a given
    # attribute is evaluated again
    Profile.objects.filter(pk=profile.pk).update(field_values={"taxonomy": "travel"})
    answer = decide(key, {"uid": "known-2", "attributes": {"age": 50}})
    assert answer["audiences"] == ["adults", "cuisine"]
    assert chosen(answer) == {"banner": ("cuisine", "audience:cuisine"),
                              "hero": ("big", "assigned")}


@pytest.mark.parametrize("attributes", [
    {"age": "forty"},  # not an int
    {"age": 30.5},  # loses its fraction
    {"age": True},
    {"taxonomy": {"kind": "cuisine"}},  # a map in a string field
    {"taxonomy": ["cuisine", "travel"]},
    {"taxonomy": None},
    {"taxonomy": ""},
])
def test_an_attribute_of_the_wrong_type_is_ignored(key: str, attributes: dict[str, Any]) -> None:
    answer = decide(key, {"uid": "new-3", "attributes": attributes})
    assert answer["audiences"] == []
    assert chosen(answer) == {"banner": ("base", "no_segment"),
                              "hero": ("control", "not_targeted")}
    assert written() == (0, 0, 0, 0)


def test_an_attribute_that_is_no_field_is_ignored(key: str) -> None:
    answer = decide(key, {"uid": "new-4", "attributes": {
        "cuisine": "taxonomy", "Taxonomy": "cuisine", "plan": "pro", "nested": {"age": 40}}})
    assert answer["audiences"] == []
    assert chosen(answer)["banner"] == ("base", "no_segment")


def test_an_audience_not_api_accessible_or_not_targeted_is_not_evaluated(
        account: Account, key: str) -> None:
    _audience(account, "internal", {"field": "taxonomy", "op": "=", "value": "cuisine"},
              api_accessible=False)
    _audience(account, "bakers", {"field": "taxonomy", "op": "=", "value": "cuisine"})
    answer = decide(key, {"uid": "new-5", "attributes": {"taxonomy": "cuisine"}})
    assert answer["audiences"] == ["cuisine", "foodies"]


def test_a_sticky_assignment_wins_over_attributes(key: str) -> None:
    assert chosen(decide(key, {"uid": "new-6", "attributes": {"age": 30}}))["hero"] == (
        "big", "assigned")
    assert Assignment.objects.filter(visitor="new-6").count() == 1
    assert chosen(decide(key, {"uid": "new-6", "attributes": {"age": 3}}))["hero"] == (
        "big", "sticky")


def test_attributes_do_not_override_withheld_consent(account: Account, key: str) -> None:
    profile = make_visitor(account, "withheld-1")
    set_consent(profile, "personalization", False)
    answer = decide(key, {"uid": "withheld-1", "attributes": {"taxonomy": "cuisine"}})
    assert answer["audiences"] == []
    assert chosen(answer)["banner"] == ("base", "consent_withheld")


def test_attributes_cost_no_query_when_no_experience_targets_an_audience(account: Account) -> None:
    make_experience(account, "everyone", uid="e1")
    secret = make_write_key(account)[1]
    decide(secret, {"uid": "warm"})
    with CaptureQueriesContext(connection) as plain:
        decide(secret, {"uid": "u-1"})
    with CaptureQueriesContext(connection) as live:
        decide(secret, {"uid": "u-2", "attributes": {"taxonomy": "cuisine"}})
    assert len(live) == len(plain)


# --------------------------------------------------------------------------- OFREP


def ofrep(key: str, context: dict[str, Any], flag: str | None = None) -> Any:
    path = "/ofrep/v1/evaluate/flags" + (f"/{flag}" if flag else "")
    return Client().post(path, json.dumps({"context": context}),
                         content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {key}")


def test_ofrep_context_attributes_target(account: Account, key: str) -> None:
    one = ofrep(key, {"targetingKey": "new-7", "taxonomy": "cuisine"}, "banner").json()
    assert (one["variant"], one["reason"], one["value"]) == (
        "cuisine", "TARGETING_MATCH", "cuisine")
    bulk = ofrep(key, {"targetingKey": "new-7", "age": 21}).json()["flags"]
    assert {f["key"]: (f["variant"], f["reason"]) for f in bulk} == {
        "banner": ("base", "STATIC"), "hero": ("big", "SPLIT")}
    profile = make_visitor(account, "known-3")
    Profile.objects.filter(pk=profile.pk).update(field_values={"taxonomy": "cuisine"})
    known = ofrep(key, {"targetingKey": "known-3", "taxonomy": "baking"}, "banner").json()
    assert (known["variant"], known["metadata"]["detail"]) == ("foodies", "audience:foodies")
    assert not AudienceMembership.objects.exists()


@pytest.mark.parametrize("attributes", [{"taxonomy": {"a": 1}, "age": "old"}, {"plan": "cuisine"}])
def test_ofrep_ignores_wrong_types_and_unknown_names(key: str, attributes: dict[str, Any]
                                                     ) -> None:
    flags = ofrep(key, {"targetingKey": "new-8", **attributes}).json()["flags"]
    assert {f["key"]: (f["variant"], f["reason"]) for f in flags} == {
        "banner": ("base", "STATIC"), "hero": ("control", "STATIC")}


# --------------------------------------------------------------------------- Personalize


def manifest(account: Account, user: str | None, attributes: Any = None) -> Any:
    headers = {"HTTP_X_PROJECT_UID": account.aid}
    if user is not None:
        headers["HTTP_X_CS_PERSONALIZE_USER_UID"] = user
    if attributes is not None:
        headers["HTTP_X_LIVE_ATTRIBUTES"] = json.dumps(attributes)
    response = Client().get("/personalize/manifest", **headers)
    assert response.status_code == 200, response.content
    return {e["shortUid"]: e["activeVariantShortUid"] for e in response.json()["experiences"]}


def test_personalize_live_attributes_target_a_new_and_a_known_visitor(
        account: Account, key: str) -> None:
    assert manifest(account, None) == {"b1": None, "h1": None}
    assert manifest(account, None, {"taxonomy": "cuisine", "age": 19}) == {"b1": "1", "h1": "1"}
    profile = make_visitor(account, "known-4", audiences=[Audience.objects.get(slug="adults")])
    Profile.objects.filter(pk=profile.pk).update(field_values={"age": 40})
    assert manifest(account, "known-4") == {"b1": None, "h1": "1"}
    assert manifest(account, "known-4", {"taxonomy": "baking"}) == {"b1": "2", "h1": "1"}
    assert AudienceMembership.objects.count() == 1 and RawEvent.objects.count() == 0


@pytest.mark.parametrize("attributes", [{"age": "teen"}, {"taxonomy": ["cuisine"]},
                                        {"favourite": "cuisine"}])
def test_personalize_ignores_wrong_types_and_unknown_names(account: Account, key: str,
                                                           attributes: dict[str, Any]) -> None:
    assert manifest(account, "new-9", attributes) == {"b1": None, "h1": None}
