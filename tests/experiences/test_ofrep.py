"""OFREP (PROTOCOLS.md §3): single and bulk evaluation, ETag/304, the protocol's errors, and
the real Python client (openfeature-sdk + openfeature-provider-ofrep) against a live server."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import Client

from cdp_site import access
from cdp_site.models import Account
from experiences.models import Assignment, Experience
from tests.conftest import make_write_key, system_actor
from tests.experiences.decide_helpers import (
    changed,
    make_audience,
    make_experience,
    make_visitor,
)

pytestmark = pytest.mark.django_db
FLAGS = "/ofrep/v1/evaluate/flags"


@pytest.fixture
def key(account: Account) -> str:
    return make_write_key(account)[1]


def post(path: str, body: Any, key: str | None, **headers: str) -> Any:
    if key is not None:
        headers.setdefault("HTTP_AUTHORIZATION", f"Bearer {key}")
    data = body if isinstance(body, str | bytes) else json.dumps(body)
    return Client().post(path, data, content_type="application/json", **headers)


def test_single_evaluation_of_a_string_experience(account: Account, key: str) -> None:
    make_experience(account, "hero", ["control", "big"], weights=[0.0, 1.0], uid="h1",
                    values=["Welcome", "WELCOME!"])
    response = post(f"{FLAGS}/hero", {"context": {"targetingKey": "u-1", "plan": "pro"}}, key)
    assert response.status_code == 200
    assert response.json() == {
        "key": "hero", "value": "WELCOME!", "variant": "big", "reason": "SPLIT",
        "metadata": {"experienceUid": "h1", "variantUid": "1", "inExperiment": True,
                     "detail": "split"},
    }
    assert Assignment.objects.get().visitor == "u-1"


def test_json_values_keep_their_types(account: Account, key: str) -> None:
    make_experience(account, "layout", ["a", "b"], weights=[1.0, 0.0],
                    value_type=Experience.ValueType.JSON,
                    values=[{"columns": 2, "ratio": 1.0, "dark": False}, {"columns": 3}])
    response = post(f"{FLAGS}/layout", {"context": {"targetingKey": "u-1"}}, key)
    assert b'"ratio":1.0' in response.content
    assert response.json()["value"] == {"columns": 2, "ratio": 1.0, "dark": False}


def test_reasons_follow_the_spec(account: Account, key: str) -> None:
    cuisine = make_audience(account, "cuisine")
    make_experience(account, "banner", ["base", "cuisine"], type=Experience.Type.SEGMENTED,
                    segments={"cuisine": (cuisine, 1)})
    paused = make_experience(account, "old", ["a", "b"])
    changed(paused, status=Experience.Status.PAUSED)
    make_visitor(account, "cook", audiences=[cuisine])
    reasons = {}
    for uid in ("cook", "stranger"):
        for flag in ("banner", "old"):
            answer = post(f"{FLAGS}/{flag}", {"context": {"targetingKey": uid}}, key).json()
            reasons[uid, flag] = (answer["variant"], answer["reason"])
    assert reasons == {
        ("cook", "banner"): ("cuisine", "TARGETING_MATCH"),
        ("stranger", "banner"): ("base", "STATIC"),
        ("cook", "old"): ("a", "DISABLED"),
        ("stranger", "old"): ("a", "DISABLED"),
    }


def test_bulk_evaluation_with_etag_and_304(account: Account, key: str) -> None:
    make_experience(account, "hero", ["a", "b"], weights=[0.0, 1.0])
    make_experience(account, "cta", ["x", "y"], weights=[1.0, 0.0])
    body = {"context": {"targetingKey": "u-1"}}
    first = post(FLAGS, body, key)
    assert first.status_code == 200
    flags = first.json()["flags"]
    assert [(f["key"], f["variant"], f["value"], f["reason"]) for f in flags] == [
        ("hero", "b", "b", "SPLIT"), ("cta", "x", "x", "SPLIT")]
    etag = first["ETag"]
    assert etag.startswith('"') and etag.endswith('"')
    again = post(FLAGS, body, key, HTTP_IF_NONE_MATCH=etag)
    assert (again.status_code, again.content, again["ETag"]) == (304, b"", etag)
    # The tag is the answer's: another visitor given the same variants has it too; a change
    # of what this visitor gets is a new one.
    other = post(FLAGS, {"context": {"targetingKey": "u-2"}}, key, HTTP_IF_NONE_MATCH=etag)
    assert (other.status_code, other["ETag"]) == (304, etag)
    make_experience(account, "new-one", ["p", "q"])
    changed_answer = post(FLAGS, body, key, HTTP_IF_NONE_MATCH=etag)
    assert changed_answer.status_code == 200 and changed_answer["ETag"] != etag
    assert len(changed_answer.json()["flags"]) == 3


@pytest.mark.parametrize(("body", "code"), [
    ("{oops", "PARSE_ERROR"),
    ("[]", "PARSE_ERROR"),
    ({}, "TARGETING_KEY_MISSING"),
    ({"context": {}}, "TARGETING_KEY_MISSING"),
    ({"context": {"targetingKey": ""}}, "TARGETING_KEY_MISSING"),
    ({"context": "u-1"}, "INVALID_CONTEXT"),
    ({"context": {"targetingKey": 7}}, "INVALID_CONTEXT"),
    ({"context": {"targetingKey": "u", "identifiers": "ann@example.com"}}, "INVALID_CONTEXT"),
])
def test_bad_requests_answer_the_protocols_errors(account: Account, key: str, body: Any,
                                                  code: str) -> None:
    make_experience(account, "hero")
    single = post(f"{FLAGS}/hero", body, key)
    assert single.status_code == 400
    assert single.json()["key"] == "hero"
    assert single.json()["errorCode"] == code and single.json()["errorDetails"]
    bulk = post(FLAGS, body, key)
    assert bulk.status_code == 400
    assert set(bulk.json()) == {"errorCode", "errorDetails"} and bulk.json()["errorCode"] == code
    assert not Assignment.objects.exists()


def test_unknown_and_draft_flags_are_not_found(account: Account, key: str) -> None:
    make_experience(account, "wip", status=Experience.Status.DRAFT)
    for flag in ("nope", "wip"):
        response = post(f"{FLAGS}/{flag}", {"context": {"targetingKey": "u"}}, key)
        assert response.status_code == 404
        assert response.json()["key"] == flag
        assert response.json()["errorCode"] == "FLAG_NOT_FOUND"
    assert "draft" in response.json()["errorDetails"]


def test_write_keys(account: Account) -> None:
    make_experience(account, "hero")
    write_key, secret = make_write_key(account)
    body = {"context": {"targetingKey": "u"}}
    assert post(f"{FLAGS}/hero", body, None).status_code == 401
    assert post(FLAGS, body, "swk_unknown-key-xxxxxxxx").status_code == 401
    assert post(f"{FLAGS}/hero", body, None, HTTP_X_API_KEY=secret).status_code == 200
    access.revoke_write_key(write_key, actor=system_actor(account))
    access._live_write_keys.clear()
    assert post(f"{FLAGS}/hero", body, secret).status_code == 401
    assert post(FLAGS, body, None, HTTP_X_API_KEY=secret).status_code == 401


def test_identifiers_in_the_context_find_a_known_visitor(account: Account, key: str) -> None:
    cuisine = make_audience(account, "cuisine")
    make_experience(account, "banner", ["base", "c"], type=Experience.Type.SEGMENTED,
                    segments={"c": (cuisine, 1)})
    make_visitor(account, "old-cookie", email="ann@example.com", audiences=[cuisine])
    body = {"context": {"targetingKey": "new-cookie",
                        "identifiers": {"email": "ann@example.com"}}}
    assert post(f"{FLAGS}/banner", body, key).json()["variant"] == "c"


# --------------------------------------------------------------------------- the real client


@pytest.fixture
def openfeature_client(live_server: Any, account: Account) -> Any:
    from openfeature import api
    from openfeature.contrib.provider.ofrep import OFREPProvider

    secret = make_write_key(account)[1]
    api.set_provider(OFREPProvider(live_server.url,
                                   headers_factory=lambda: {"Authorization": f"Bearer {secret}"}))
    yield api.get_client()
    api.clear_providers()


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_openfeature_python_client_evaluates_string_and_json_experiences(
        account: Account, openfeature_client: Any) -> None:
    from openfeature.evaluation_context import EvaluationContext
    from openfeature.flag_evaluation import Reason

    make_experience(account, "hero-banner", ["control", "bold"], weights=[0.0, 1.0],
                    values=["Welcome", "Welcome!!"])
    make_experience(account, "layout", ["grid", "list"], weights=[0.0, 1.0],
                    value_type=Experience.ValueType.JSON,
                    values=[{"columns": 3}, {"columns": 1, "dense": True, "scale": 1.0}])
    context = EvaluationContext(targeting_key="u-1", attributes={"plan": "pro"})
    text = openfeature_client.get_string_details("hero-banner", "fallback", context)
    assert (text.value, text.variant, text.reason, text.error_code) == (
        "Welcome!!", "bold", Reason.SPLIT, None)
    assert text.flag_metadata["inExperiment"] is True
    layout = openfeature_client.get_object_details("layout", {}, context)
    assert (layout.value, layout.variant) == ({"columns": 1, "dense": True, "scale": 1.0}, "list")
    missing = openfeature_client.get_string_details("no-such-flag", "fallback", context)
    assert (missing.value, missing.error_code.value) == ("fallback", "FLAG_NOT_FOUND")
    no_key = openfeature_client.get_string_details("hero-banner", "fallback",
                                                   EvaluationContext(attributes={"a": 1}))
    assert (no_key.value, no_key.error_code.value) == ("fallback", "TARGETING_KEY_MISSING")
    wrong_type = openfeature_client.get_string_details("layout", "fallback", context)
    assert (wrong_type.value, wrong_type.error_code.value) == ("fallback", "TYPE_MISMATCH")
    assert Assignment.objects.filter(visitor="u-1").count() == 2
