"""GET /api/v1/profiles/… lists the profile's audiences and experience assignments (issue 12,
item 5), contributed through STRATA_PROFILE_DOCUMENT_HOOKS (profiles imports neither app):
API-accessible audiences for every profile reader, every audience for one who may view
audiences; assignments by profile id, by merged profiles and by identifier as visitor key."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import override_settings

from audiences.models import Audience
from cdp_site.models import Account
from experiences.models import Assignment
from tests.audiences.live import lytics_account, process, profile_of, run_queued_tasks
from tests.conftest import make_token, token_client
from tests.experiences.tracking_fixtures import ab_test

pytestmark = pytest.mark.django_db

GOLD = {"field": "loyalty_tier", "op": "=", "value": "Gold"}
ANN = "/api/v1/profiles/email/ann@example.com"


@pytest.fixture
def crm(account: Account, django_capture_on_commit_callbacks: Any) -> Account:
    lytics_account(account)
    process(account,
            {"origin": {"email": "ann@example.com"}, "response": {"loyalty_tier": "Gold"}},
            {"origin": {"email": "bob@example.com"}, "response": {"loyalty_tier": "silver"}},
            stream="crm_users")
    admin = client(account, "admin")
    for name, accessible in (("Gold site", True), ("Gold internal", False)):
        with django_capture_on_commit_callbacks(execute=True):
            created = admin.post("/api/v1/audiences/", {"name": name, "rule": GOLD,
                                                        "api_accessible": accessible},
                                 format="json")
            assert created.status_code == 201, created.content
    run_queued_tasks()
    return account


def client(account: Account, *roles: str) -> Any:
    return token_client(make_token(account, list(roles))[1])


def test_a_reader_who_may_view_audiences_sees_every_audience(crm: Account) -> None:
    body = client(crm, "admin").get(ANN).json()
    assert [(a["slug"], a["api_accessible"]) for a in body["audiences"]] == [
        ("gold-internal", False), ("gold-site", True)]
    assert all(a["since"] for a in body["audiences"])
    bob = client(crm, "admin").get("/api/v1/profiles/email/bob@example.com").json()
    assert bob["audiences"] == []


def test_other_readers_see_only_api_accessible_audiences(crm: Account) -> None:
    reader = client(crm, "data_manager")  # profiles.view without audiences.view
    body = reader.get(ANN).json()
    assert [a["slug"] for a in body["audiences"]] == ["gold-site"]
    by_id = reader.get(f"/api/v1/profiles/{body['id']}").json()
    assert [a["slug"] for a in by_id["audiences"]] == ["gold-site"]


def test_the_profile_answer_agrees_with_the_for_profile_endpoint(crm: Account) -> None:
    admin = client(crm, "admin")
    body = admin.get(ANN).json()
    listed = admin.get(f"/api/v1/audiences/for-profile/{body['id']}/").json()["results"]
    assert [a["slug"] for a in listed] == [a["slug"] for a in body["audiences"]]
    Audience.objects.filter(slug="gold-site").update(api_accessible=False)
    assert client(crm, "data_manager").get(ANN).json()["audiences"] == []


def test_experience_assignments_are_listed(crm: Account) -> None:
    ann = profile_of(crm, "email", "ann@example.com")
    hero = ab_test(crm)
    banner = ab_test(crm, key="banner", uid="c", variants=("plain", "bright"))
    other = ab_test(crm, key="other", uid="d")
    common = {"account_id": crm.pk, "phase": 1}
    Assignment.objects.create(**common, experience=hero, visitor="cookie-1", profile_id=ann.pk,
                              variant=hero.variants.get(key="bold"))
    # decided for a visitor key that is one of her identifiers, before the profile was known
    Assignment.objects.create(**common, experience=banner, visitor="ann@example.com",
                              variant=banner.variants.get(key="bright"))
    Assignment.objects.create(**common, experience=other, visitor="someone-else",
                              variant=other.variants.get(key="bold"))
    body = client(crm, "data_manager").get(ANN).json()
    found = {row["experience"]: row for row in body["experiences"]}
    assert set(found) == {"hero", "banner"}
    assert (found["hero"]["variant"], found["hero"]["variant_uid"]) == ("bold", "1")
    assert found["banner"]["variant"] == "bright" and found["banner"]["current_phase"]
    assert found["hero"]["status"] == "active" and found["hero"]["assigned_at"]


def test_without_the_hooks_the_profile_api_still_answers(crm: Account) -> None:
    with override_settings(STRATA_PROFILE_DOCUMENT_HOOKS=[]):
        body = client(crm, "admin").get(ANN).json()
    assert body["audiences"] == [] and body["experiences"] == []


def test_the_schema_describes_audiences_and_experiences(crm: Account) -> None:
    schema = client(crm, "admin").get("/api/schema/", {"format": "json"}).json()
    profile = schema["components"]["schemas"]["Profile"]["properties"]
    assert profile["audiences"]["type"] == "array" and "$ref" in profile["audiences"]["items"]
    assert "$ref" in profile["experiences"]["items"]
