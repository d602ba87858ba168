"""Limits that say what they are, and slugs made from any name (issue 12, item 8): the members
endpoint caps ``limit`` at 200 and says the page size it used; the docs and the schema give
the same maximum; names transliterate (``Ünïcødé`` → ``unicode``) and a name of only emoji gets
a generated slug."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from audiences.models import Audience, AudienceMembership
from cdp_site.models import Account
from profiles.api.views import PageWithoutCount
from profiles.models import Profile
from profiles.schema.lytics import install_lytics_schema
from tests.audiences.page_data import audience

pytestmark = pytest.mark.django_db

MEMBERS = "/api/v1/audiences/big/members/"
DOCS = Path(__file__).resolve().parents[2] / "docs" / "api.md"


@pytest.fixture(autouse=True)
def schema(account: Account) -> None:
    install_lytics_schema(account)  # rules name the published email field


@pytest.fixture
def big(account: Account) -> Audience:
    made = audience(account, "big", "Big", {"field": "email", "op": "exists"})
    now = timezone.now()
    profiles = Profile.objects.bulk_create([
        Profile(account=account, field_values={}, first_seen=now, last_seen=now)
        for _ in range(205)])
    AudienceMembership.objects.bulk_create([
        AudienceMembership(account=account, audience=made, profile=p) for p in profiles])
    return made


def test_a_limit_above_the_maximum_is_capped_and_said(admin_client: APIClient,
                                                      big: Audience) -> None:
    body = admin_client.get(MEMBERS, {"limit": 1000}).json()
    assert body["limit"] == PageWithoutCount.max_limit == 200
    assert len(body["results"]) == 200 and "limit=200" in body["next"]
    rest = admin_client.get(body["next"]).json()
    assert len(rest["results"]) == 5 and rest["next"] is None


@pytest.mark.parametrize(("asked", "used"), [("3", 3), ("0", 25), ("-4", 25), ("lots", 25),
                                             ("", 25)])
def test_the_answer_says_the_page_size_used(admin_client: APIClient, big: Audience,
                                            asked: str, used: int) -> None:
    body = admin_client.get(MEMBERS, {"limit": asked}).json()
    assert body["limit"] == used and len(body["results"]) == used


def test_the_schema_and_the_docs_give_the_same_maximum(admin_client: APIClient) -> None:
    schema = admin_client.get("/api/schema/", {"format": "json"}).json()
    operation = schema["paths"]["/api/v1/audiences/{slug}/members/"]["get"]
    limit = next(p for p in operation["parameters"] if p["name"] == "limit")
    assert limit["schema"]["maximum"] == 200 and limit["schema"]["default"] == 25
    page = operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    assert "limit" in schema["components"]["schemas"][page.rsplit("/", 1)[-1]]["properties"]
    row = next(line for line in DOCS.read_text().splitlines()
               if line.startswith("| `GET /api/v1/audiences/{slug}/members/`"))
    assert "at most 200" in row and "1000" not in row


@pytest.mark.parametrize(("name", "slug"), [
    ("Ünïcødé", "unicode"), ("Crème brûlée 🎉 fans", "creme-brulee-fans"),
    ("Straße & Łódź", "strasse-lodz"), ("東京", "dongjing"), ("Gold members", "gold-members")])
def test_names_transliterate(admin_client: APIClient, name: str, slug: str) -> None:
    created = admin_client.post("/api/v1/audiences/", {"name": name, "rule": {
        "field": "email", "op": "exists"}}, format="json")
    assert created.status_code == 201, created.content
    assert created.json()["slug"] == slug
    assert admin_client.get(f"/api/v1/audiences/{slug}/").json()["name"] == name


def test_a_name_of_only_emoji_gets_a_generated_slug(admin_client: APIClient) -> None:
    slugs = []
    for _ in range(2):
        created = admin_client.post("/api/v1/audiences/", {"name": "🎉🚀", "rule": {
            "field": "email", "op": "exists"}}, format="json")
        assert created.status_code == 201, created.content
        slugs.append(created.json()["slug"])
    assert all(re.fullmatch(r"audience-[0-9a-f]{8}", slug) for slug in slugs)
    assert slugs[0] != slugs[1]
    assert admin_client.get(f"/api/v1/audiences/{slugs[0]}/").status_code == 200


@pytest.mark.parametrize("body", [{"name": "Party", "slug": "🎉"}, {"name": "  "}])
def test_a_typed_slug_or_a_name_without_letters_is_refused(admin_client: APIClient,
                                                           body: dict[str, Any]) -> None:
    refused = admin_client.post("/api/v1/audiences/", {**body, "rule": {
        "field": "email", "op": "exists"}}, format="json")
    assert refused.status_code == 400
    assert refused.json()["code"] in ("invalid_slug", "invalid")
    assert not Audience.objects.exists()

