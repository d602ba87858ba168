"""POST /api/v1/decide: the answer, authentication, bad input, and decisions that follow the
pipeline (an event collected, processed, and the next decision changed)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import Client

from cdp_site import access
from cdp_site.models import Account
from experiences.models import Assignment, Experience
from profiles.processing.pipeline import process_pending
from profiles.schema.drafts import save_field, save_mapping
from profiles.schema.versions import publish
from tests.conftest import make_write_key, system_actor
from tests.experiences.decide_helpers import (
    make_audience,
    make_experience,
    make_visitor,
    set_consent,
)

pytestmark = pytest.mark.django_db
URL = "/api/v1/decide"


@pytest.fixture
def key(account: Account) -> str:
    return make_write_key(account)[1]


def post(body: Any, key: str | None = None, **headers: str) -> Any:
    if key is not None:
        headers.setdefault("HTTP_AUTHORIZATION", f"Bearer {key}")
    data = body if isinstance(body, str | bytes) else json.dumps(body)
    return Client().post(URL, data, content_type="application/json", **headers)


def test_the_answer_names_every_experience_and_the_visitors_audiences(
        account: Account, key: str) -> None:
    cuisine = make_audience(account, "cuisine")
    make_audience(account, "internal", api_accessible=False)
    make_experience(account, "hero", ["control", "big"], weights=[0.0, 1.0], uid="h1")
    make_experience(account, "banner", ["base", "cuisine-banner"],
                    type=Experience.Type.SEGMENTED, segments={"cuisine-banner": (cuisine, 1)},
                    value_type=Experience.ValueType.JSON,
                    values=[{"color": "grey"}, {"color": "red", "size": 1.5}], uid="b1")
    make_visitor(account, "visitor-1", audiences=[cuisine])
    response = post({"uid": "visitor-1", "attributes": {"plan": "pro"}}, key)
    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    assert response.json() == {
        "uid": "visitor-1", "known": True, "audiences": ["cuisine"],
        "decisions": [
            {"experience": "hero", "experience_uid": "h1", "variant": "big", "variant_uid": "1",
             "value": "big", "content": {"headline": "big headline"}, "reason": "SPLIT",
             "detail": "assigned", "in_experiment": True},
            {"experience": "banner", "experience_uid": "b1", "variant": "cuisine-banner",
             "variant_uid": "1", "value": {"color": "red", "size": 1.5},
             "content": {"headline": "cuisine-banner headline"}, "reason": "TARGETING_MATCH",
             "detail": "audience:cuisine", "in_experiment": False},
        ],
    }
    only = post({"uid": "visitor-1", "experiences": ["banner"]}, key).json()
    assert [d["experience"] for d in only["decisions"]] == ["banner"]
    assert post({"uid": "visitor-1", "experiences": ["h1"]}, key).json()[
        "decisions"][0]["detail"] == "sticky"


@pytest.mark.parametrize("how", ["bearer", "x-api-key", "basic", "body"])
def test_the_write_key_is_read_as_collection_reads_it(account: Account, key: str,
                                                      how: str) -> None:
    import base64

    make_experience(account, "hero")
    body: dict[str, Any] = {"uid": "v"}
    headers = {
        "bearer": {"HTTP_AUTHORIZATION": f"Bearer {key}"},
        "x-api-key": {"HTTP_X_API_KEY": key},
        "basic": {"HTTP_AUTHORIZATION": "Basic " + base64.b64encode(f"{key}:".encode()).decode()},
        "body": {},
    }[how]
    if how == "body":
        body["writeKey"] = key
    response = post(body, **headers)
    assert response.status_code == 200, response.content
    assert response.json()["decisions"][0]["experience"] == "hero"


def test_missing_invalid_and_revoked_write_keys_are_refused(account: Account) -> None:
    make_experience(account, "hero")
    write_key, secret = make_write_key(account)
    assert post({"uid": "v"}).status_code == 401
    assert post({"uid": "v"}).json()["code"] == "missing_write_key"
    wrong = post({"uid": "v"}, "swk_not-a-real-key-at-all")
    assert (wrong.status_code, wrong.json()["code"]) == (401, "invalid_write_key")
    assert set(wrong.json()) == {"code", "message"}
    assert not Assignment.objects.exists()
    assert post({"uid": "v"}, secret).status_code == 200
    access.revoke_write_key(write_key, actor=system_actor(account))
    access._live_write_keys.clear()  # the hot-path cache: a revoked key stops within seconds
    revoked = post({"uid": "v"}, secret)
    assert (revoked.status_code, revoked.json()["code"]) == (401, "invalid_write_key")
    assert "revoked" in revoked.json()["message"]
    assert post({"uid": "other"}, secret).status_code == 401
    assert list(Assignment.objects.values_list("visitor", flat=True)) == ["v"]


@pytest.mark.parametrize(("body", "status", "code"), [
    ("{not json", 400, "invalid_json"),
    ("[1, 2]", 400, "invalid_body"),
    ({}, 400, "missing_uid"),
    ({"uid": ""}, 400, "missing_uid"),
    ({"uid": 42}, 400, "invalid_uid"),
    ({"uid": "x" * 301}, 400, "invalid_uid"),
    ({"uid": "v", "identifiers": ["email"]}, 400, "invalid_identifiers"),
    ({"uid": "v", "identifiers": {"email": None}}, 400, "invalid_identifiers"),
    ({"uid": "v", "attributes": "pro"}, 400, "invalid_attributes"),
    ({"uid": "v", "experiences": "hero"}, 400, "invalid_experiences"),
    ({"uid": "v", "experiences": ["hero", "nope"]}, 404, "unknown_experience"),
])
def test_bad_input_is_refused_with_a_reason_and_nothing_stored(
        account: Account, key: str, body: Any, status: int, code: str) -> None:
    make_experience(account, "hero")
    response = post(body, key)
    assert (response.status_code, response.json()["code"]) == (status, code)
    assert response.json()["message"]
    assert not Assignment.objects.exists()


def test_a_bad_body_without_a_key_is_refused_for_the_key_first(account: Account) -> None:
    assert post("{not json").json()["code"] == "missing_write_key"


def test_only_post(account: Account, key: str) -> None:
    response = Client().get(URL, HTTP_AUTHORIZATION=f"Bearer {key}")
    assert (response.status_code, response["Allow"]) == (405, "POST")


def test_withheld_consent_over_http(account: Account, key: str) -> None:
    cuisine = make_audience(account, "cuisine")
    make_experience(account, "hero", ["a", "b"], weights=[0.0, 1.0])
    set_consent(make_visitor(account, "v", audiences=[cuisine]), "personalization", False)
    answer = post({"uid": "v"}, key).json()
    assert answer["audiences"] == []
    assert [(d["variant"], d["reason"], d["detail"]) for d in answer["decisions"]] == [
        ("a", "STATIC", "consent_withheld")]


# --------------------------------------------------------------------------- through the pipeline


def lytics_schema(account: Account) -> None:
    uid = save_field(account, name="_uid", type="[]string", merge_operator="merge",
                     capacity=50, is_identifier=True, identifier_rank=2,
                     identifier_capacity=50)
    email = save_field(account, name="email", type="string", merge_operator="latest",
                       is_identifier=True, identifier_rank=1, identifier_capacity=1)
    taxonomy = save_field(account, name="taxonomy", type="string",
                          merge_operator="latest")
    save_mapping(account, field=uid, stream="default",
                 expression="oneof(`_uid`, anonymousId)")
    save_mapping(account, field=email, stream="default",
                 expression="email(oneof(email, traits.email))")
    save_mapping(account, field=taxonomy, stream="default", expression="taxonomy",
                 guard="exists(taxonomy)")
    publish(account)


def collect(key: str, message: dict[str, Any]) -> None:
    """One message as the tag sends it (its fields flat in the message)."""
    response = Client().post("/v1/track", json.dumps(message), content_type="application/json",
                             HTTP_AUTHORIZATION=f"Bearer {key}")
    assert response.status_code == 200, response.content


def test_an_event_that_moves_a_visitor_into_an_audience_changes_the_next_decision(
        account: Account, key: str) -> None:
    lytics_schema(account)
    cuisine = make_audience(account, "cuisine")
    make_experience(account, "banner", ["base", "cuisine-banner"],
                    type=Experience.Type.SEGMENTED, segments={"cuisine-banner": (cuisine, 1)})
    collect(key, {"event": "page", "anonymousId": "visitor-9",
                  "taxonomy": "travel"})
    process_pending(account_id=account.pk)
    before = post({"uid": "visitor-9"}, key).json()
    assert (before["known"], before["audiences"]) == (True, [])
    assert before["decisions"][0]["variant"] == "base"

    collect(key, {"event": "page", "anonymousId": "visitor-9",
                  "taxonomy": "cuisine"})
    process_pending(account_id=account.pk)
    after = post({"uid": "visitor-9"}, key).json()
    assert after["audiences"] == ["cuisine"]
    assert (after["decisions"][0]["variant"], after["decisions"][0]["reason"]) == (
        "cuisine-banner", "TARGETING_MATCH")

    # Withholding personalization consent (the tag's consent() on the next event): base again.
    collect(key, {"event": "page", "anonymousId": "visitor-9",
                  "taxonomy": "cuisine",
                  "context": {"consent": {"categoryPreferences": {"personalization": False}}}})
    process_pending(account_id=account.pk)
    withheld = post({"uid": "visitor-9"}, key).json()
    assert withheld["audiences"] == []
    assert withheld["decisions"][0]["detail"] == "consent_withheld"


def test_an_identified_visitor_keeps_the_variant_of_their_anonymous_visits(
        account: Account, key: str) -> None:
    from experiences.bucketing import assign

    lytics_schema(account)
    exp = make_experience(account, "hero", ["a", "b"])
    laptop = next(f"laptop-{n}" for n in range(500) if assign(exp.uid, f"laptop-{n}",
                                                              [.5, .5]) == 0)
    phone = next(f"phone-{n}" for n in range(500) if assign(exp.uid, f"phone-{n}",
                                                            [.5, .5]) == 1)
    collect(key, {"event": "page", "anonymousId": laptop})
    process_pending(account_id=account.pk)
    assert post({"uid": laptop}, key).json()["decisions"][0]["variant"] == "a"
    # Signed in on the laptop, then seen on a phone with the same email: one profile.
    collect(key, {"event": "signed_in", "anonymousId": laptop,
                  "traits": {"email": "ann@example.com"}})
    collect(key, {"event": "signed_in", "anonymousId": phone,
                  "traits": {"email": "ann@example.com"}})
    process_pending(account_id=account.pk)
    on_phone = post({"uid": phone}, key).json()["decisions"][0]
    assert (on_phone["variant"], on_phone["detail"]) == ("a", "sticky")
