"""The audiences API: CRUD by slug (rule as JSON or text), background computation, members
with PII masked, size and history, a profile's audiences, validate/estimate, refusals."""

from __future__ import annotations

from typing import Any

import pytest

from audiences.models import Audience, MembershipChange
from cdp_site.models import Account, AuditEvent
from tests.audiences.live import lytics_account, process, profile_of, run_queued_tasks
from tests.conftest import make_token, token_client

pytestmark = pytest.mark.django_db

GOLD = {"field": "loyalty_tier", "op": "=", "value": "Gold"}


@pytest.fixture
def crm(account: Account) -> Account:
    lytics_account(account)
    process(account,
            {"origin": {"email": "ann@example.com"}, "response": {"loyalty_tier": "Gold"}},
            {"origin": {"email": "bob@example.com"}, "response": {"loyalty_tier": "silver"}},
            {"origin": {"email": "cyd@example.com"}, "response": {"loyalty_tier": "GOLD"}},
            stream="crm_users")
    return account


def client(account: Account, roles: tuple[str, ...] = ("admin",)) -> Any:
    return token_client(make_token(account, list(roles))[1])


def create(c: Any, django_capture_on_commit_callbacks: Any, **body: Any) -> Any:
    with django_capture_on_commit_callbacks(execute=True):
        response = c.post("/api/v1/audiences/", body, format="json")
    run_queued_tasks()
    return response


def test_create_computes_in_the_background_and_lists_members(
        crm: Account, django_capture_on_commit_callbacks: Any) -> None:
    c = client(crm)
    with django_capture_on_commit_callbacks(execute=True):
        response = c.post("/api/v1/audiences/", {"name": "Gold members", "rule": GOLD},
                          format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["slug"] == "gold-members"
    assert body["status"] == "computing" and body["size"] is None
    assert body["text"] == 'FILTER loyalty_tier = "Gold"'
    assert body["depends_on"] == ["field:loyalty_tier"]
    assert run_queued_tasks() == 1

    size = c.get("/api/v1/audiences/gold-members/size/").json()
    assert (size["size"], size["status"], size["progress"]) == (2, "ready", 1.0)
    assert [p["size"] for p in size["history"]] == [2]
    page = c.get("/api/v1/audiences/gold-members/members/", {"limit": 1}).json()
    assert len(page["results"]) == 1 and page["next"]
    emails = {m["fields"]["email"] for m in
              c.get("/api/v1/audiences/gold-members/members/").json()["results"]}
    assert emails == {"ann@example.com", "cyd@example.com"}
    audience = Audience.objects.get(slug="gold-members")
    assert MembershipChange.objects.filter(audience=audience, kind="entry",
                                           cause="compute").count() == 2
    assert AuditEvent.objects.filter(action="audience.created").count() == 1


def test_members_pii_is_masked_without_pii_view(crm: Account,
                                                django_capture_on_commit_callbacks: Any) -> None:
    create(client(crm), django_capture_on_commit_callbacks, name="Gold", rule=GOLD)
    rows = client(crm, ("marketer",)).get("/api/v1/audiences/gold/members/").json()["results"]
    assert {r["fields"]["email"] for r in rows} == {"a***@example.com", "c***@example.com"}
    assert {r["fields"]["loyalty_tier"] for r in rows} == {"Gold", "GOLD"}


def test_text_rule_and_edit_bumps_version_and_recomputes(
        crm: Account, django_capture_on_commit_callbacks: Any) -> None:
    c = client(crm)
    create(c, django_capture_on_commit_callbacks, name="Tier", slug="tier",
           text='FILTER loyalty_tier = "gold"')
    assert c.get("/api/v1/audiences/tier/").json()["size"] == 2
    with django_capture_on_commit_callbacks(execute=True):
        response = c.patch("/api/v1/audiences/tier/",
                           {"text": 'FILTER loyalty_tier IN ("silver")'}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["version"] == 2
    run_queued_tasks()
    audience = Audience.objects.get(slug="tier")
    assert audience.size == 1 and audience.status == "ready"
    bob = profile_of(crm, "email", "bob@example.com")
    kinds = sorted((c.kind, c.profile_id == bob.pk) for c in
                   MembershipChange.objects.filter(audience=audience, cause="compute"))
    assert kinds == [("entry", False), ("entry", False), ("entry", True), ("exit", False),
                     ("exit", False)]
    # a change of name only: same version, nothing queued
    c.patch("/api/v1/audiences/tier/", {"name": "Silver tier"}, format="json")
    assert Audience.objects.get(slug="tier").version == 2
    assert run_queued_tasks() == 0


def test_validate_estimates_without_saving(crm: Account) -> None:
    c = client(crm, ("observer",))
    response = c.post("/api/v1/audiences/validate/", {"text": 'loyalty_tier = "GOLD"'},
                      format="json")
    assert response.status_code == 200, response.content
    assert response.json() == {"valid": True, "rule": GOLD | {"value": "GOLD"},
                               "text": 'FILTER loyalty_tier = "GOLD"', "estimated_size": 2}
    assert not Audience.objects.exists()


@pytest.mark.parametrize(("body", "path", "code"), [
    ({"rule": {"field": "nope", "op": "=", "value": "x"}}, "$", "unknown_field"),
    ({"rule": {"and": [GOLD, {"field": "loyalty_tier", "op": ">", "value": 3}]}}, "and[1]",
     "value_type"),
    ({"rule": {"or": [{"field": "preferred_activities", "op": "between",
                       "value": ["a", "b"]}]}}, "or[0]", "operator_type"),
    ({"rule": {"audience": "nobody", "op": "include"}}, "$", "unknown_audience"),
])
def test_invalid_rules_answer_400_with_the_node_path(crm: Account, body: dict[str, Any],
                                                     path: str, code: str) -> None:
    for url, extra in (("/api/v1/audiences/validate/", {}),
                       ("/api/v1/audiences/", {"name": "Bad"})):
        response = client(crm).post(url, {**body, **extra}, format="json")
        assert response.status_code == 400, response.content
        answer = response.json()
        assert answer["code"] == "invalid_rule"
        assert [(p["path"], p["code"]) for p in answer["problems"]] == [(path, code)]
    assert not Audience.objects.exists()


def test_text_syntax_error_gives_its_position(crm: Account) -> None:
    response = client(crm).post("/api/v1/audiences/", {
        "name": "Bad", "text": 'FILTER AND(loyalty_tier = "Gold",\n  taxonomy = )'},
        format="json")
    assert response.status_code == 400
    problem = response.json()["problems"][0]
    assert (problem["code"], problem["line"], problem["column"]) == ("syntax", 2, 14)
    assert not Audience.objects.exists()


def test_self_inclusion_is_refused_directly_and_through_others(
        crm: Account, django_capture_on_commit_callbacks: Any) -> None:
    c = client(crm)
    create(c, django_capture_on_commit_callbacks, name="A", rule=GOLD)
    create(c, django_capture_on_commit_callbacks, name="B",
           rule={"audience": "a", "op": "include"})
    direct = c.patch("/api/v1/audiences/a/", {"rule": {"and": [
        GOLD, {"audience": "a", "op": "exclude"}]}}, format="json")
    assert direct.status_code == 400
    assert [(p["path"], p["code"]) for p in direct.json()["problems"]] == [
        ("and[1]", "self_reference")]
    through = c.patch("/api/v1/audiences/a/", {"rule": {"audience": "b", "op": "include"}},
                      format="json")
    assert through.status_code == 400
    assert through.json()["problems"][0]["code"] == "self_reference"
    assert Audience.objects.get(slug="a").rule == GOLD


def test_delete_refused_while_used_then_allowed(
        crm: Account, django_capture_on_commit_callbacks: Any) -> None:
    c = client(crm)
    create(c, django_capture_on_commit_callbacks, name="A", rule=GOLD)
    create(c, django_capture_on_commit_callbacks, name="B",
           rule={"audience": "a", "op": "exclude"})
    refused = c.delete("/api/v1/audiences/a/")
    assert refused.status_code == 409
    assert refused.json()["code"] == "audience_in_use"
    assert refused.json()["used_by"] == ["audience b"]
    assert c.delete("/api/v1/audiences/b/").status_code == 204
    assert c.delete("/api/v1/audiences/a/").status_code == 204
    assert not Audience.objects.exists()
    assert AuditEvent.objects.filter(action="audience.deleted").count() == 2


def test_delete_refused_while_an_experience_targets_it(
        crm: Account, django_capture_on_commit_callbacks: Any) -> None:
    from experiences.models import Experience

    c = client(crm)
    create(c, django_capture_on_commit_callbacks, name="A", rule=GOLD)
    experience = Experience.objects.create(account=crm, key="hero", uid="u1", name="Hero",
                                           target="audiences")
    experience.target_audiences.add(Audience.objects.get(slug="a"))
    response = c.delete("/api/v1/audiences/a/")
    assert response.status_code == 409
    assert response.json()["used_by"] == ["experience hero"]


def test_profile_audiences(crm: Account, django_capture_on_commit_callbacks: Any) -> None:
    c = client(crm)
    create(c, django_capture_on_commit_callbacks, name="Gold", rule=GOLD)
    ann = profile_of(crm, "email", "ann@example.com")
    bob = profile_of(crm, "email", "bob@example.com")
    found = c.get(f"/api/v1/audiences/for-profile/{ann.pk}/").json()
    assert [a["slug"] for a in found["results"]] == ["gold"]
    assert c.get(f"/api/v1/audiences/for-profile/{bob.pk}/").json()["results"] == []
    assert c.get("/api/v1/audiences/for-profile/999999999/").status_code == 404


def test_other_accounts_audiences_are_not_found(
        crm: Account, django_capture_on_commit_callbacks: Any) -> None:
    create(client(crm), django_capture_on_commit_callbacks, name="Gold", rule=GOLD)
    other = Account.objects.create(name="Other", slug="other")
    c = client(other)
    assert c.get("/api/v1/audiences/gold/").status_code == 404
    assert c.get("/api/v1/audiences/").json()["results"] == []
    assert c.delete("/api/v1/audiences/gold/").status_code == 404


def test_a_failed_computation_is_visible(crm: Account,
                                         django_capture_on_commit_callbacks: Any) -> None:
    """A rule the live schema no longer supports fails the computation, visibly."""
    c = client(crm)
    create(c, django_capture_on_commit_callbacks, name="Gold", rule=GOLD)
    Audience.objects.filter(slug="gold").update(rule={"field": "gone", "op": "exists"})
    with django_capture_on_commit_callbacks(execute=True):
        assert c.post("/api/v1/audiences/gold/compute/").status_code == 202
    run_queued_tasks()
    size = c.get("/api/v1/audiences/gold/size/").json()
    assert size["status"] == "failed"
    assert "gone" in size["error"]
    assert size["size"] == 2  # the last known size stays


def test_nesting_deeper_than_twenty_levels_is_refused(crm: Account) -> None:
    rule: dict[str, Any] = GOLD
    for _ in range(20):
        rule = {"not": rule}
    response = client(crm).post("/api/v1/audiences/", {"name": "Deep", "rule": rule},
                                format="json")
    assert response.status_code == 400
    problem = response.json()["problems"][0]
    assert problem["code"] == "too_deep" and problem["path"] == ".".join(["not"] * 20)
    assert not Audience.objects.exists()


@pytest.mark.parametrize("body", [
    {"text": 'FILTER `loyalty_tier"; DROP TABLE profiles_profile; --` = "x"'},
    {"rule": {"event": "x'); DELETE FROM profiles_profile; --", "where": [
        {"property": "p') OR 1=1 --", "op": "=", "value": "' OR '1'='1"}]}},
    {"rule": {"field": "loyalty_tier", "op": "like", "value": "%' OR 1=1; --*"}},
    {"text": "FILTER loyalty_tier IN (\"Gold') OR ('1'='1\")"},
])
def test_sql_injection_through_the_api_has_no_effect(crm: Account, body: dict[str, Any]
                                                     ) -> None:
    from profiles.models import Profile

    before = Profile.objects.count()
    response = client(crm).post("/api/v1/audiences/validate/", body, format="json")
    if response.status_code == 200:
        assert response.json()["estimated_size"] == 0
    else:
        assert response.json()["code"] == "invalid_rule"
        assert response.json()["problems"][0]["code"] == "unknown_field"
    assert Profile.objects.count() == before == 3


def test_unknown_operator_and_missing_rule(crm: Account) -> None:
    c = client(crm)
    bad = c.post("/api/v1/audiences/validate/",
                 {"rule": {"field": "loyalty_tier", "op": "~", "value": "x"}}, format="json")
    assert bad.json()["problems"][0]["code"] == "unknown_operator"
    missing = c.post("/api/v1/audiences/", {"name": "Nothing"}, format="json")
    assert missing.status_code == 400 and missing.json()["code"] == "invalid_rule"
    reserved = c.post("/api/v1/audiences/", {"name": "Validate", "rule": GOLD}, format="json")
    assert reserved.status_code == 400 and reserved.json()["code"] == "invalid_slug"
