"""The experience editor's server side: its pages (New, Edit) with the catalog (audiences with
sizes, goals and the events seen with their counts), the dry run (what would refuse the save,
what blocks activation, whether a live change starts a new phase) that writes nothing, the
activation blockers on a draft's page, each linked to its fix, and one refusal message."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from experiences import lifecycle
from experiences.models import Experience, Phase
from profiles.models import Profile, ProfileEvent
from tests.experiences import lifecycle_helpers as build
from tests.experiences.test_pages import signed_in

pytestmark = pytest.mark.django_db


def script_json(response, element_id: str) -> Any:
    html = response.content.decode()
    start = html.index(f'<script id="{element_id}" type="application/json">')
    return json.loads(html[start:].split(">", 1)[1].split("</script>", 1)[0])


def dry_run(client: Client, changes: dict[str, Any], existing: str | None = None) -> Any:
    response = client.post("/experiences/_check/", {"existing": existing, "changes": changes},
                           content_type="application/json")
    assert response.status_code == 200, response.content
    return response.json()


def seen(account, event: str, stream: str, n: int) -> None:
    profile = Profile.objects.create(account=account, first_seen=timezone.now(),
                                     last_seen=timezone.now())
    ProfileEvent.objects.bulk_create([
        ProfileEvent(account=account, profile=profile, raw_event_id=i, stream=stream,
                     event=event, at=timezone.now() - timedelta(hours=i))
        for i in range(n)])


def test_new_and_edit_pages_offer_the_catalog_with_counts(account) -> None:
    seen(account, "booked", "web", 3)
    seen(account, "booked", "default", 2)
    seen(account, "signup", "web", 1)
    build.goal(account, key="booked-web", event="booked", stream="web")
    build.goal(account, key="booked-any", event="booked")
    cuisine = build.audience(account, "cuisine")
    cuisine.size = 42
    cuisine.save()
    client = signed_in(account, "experience_manager")

    page = client.get("/experiences/new/")
    assert page.status_code == 200
    catalog = script_json(page, "editor-catalog")
    goals = {g["key"]: g["count"] for g in catalog["goals"]}
    assert goals == {"booked-web": 3, "booked-any": 5}  # no stream: every stream counts
    assert {(e["event"], e["stream"]): e["count"] for e in catalog["events"]} == {
        ("booked", "web"): 3, ("booked", "default"): 2, ("signup", "web"): 1}
    assert catalog["audiences"] == [{"slug": "cuisine", "name": "Cuisine", "size": 42,
                                     "api_accessible": True}]
    assert script_json(page, "editor-config")["can_create_goals"] is False

    exp = build.ab_test(account)
    edit = client.get(f"/experiences/{exp.key}/edit/")
    state = script_json(edit, "editor-config")["experience"]
    assert [v["key"] for v in state["variants"]] == ["control", "bold"]
    assert client.get("/experiences/nope/edit/").status_code == 404
    assert signed_in(account, "observer", name="olly").get("/experiences/new/").status_code \
        == 403


def test_the_dry_run_lists_blockers_with_their_fields_and_writes_nothing(account) -> None:
    client = signed_in(account, "marketer")
    answer = dry_run(client, {
        "key": "hero", "name": "Hero", "type": "ab", "distribution": "custom",
        "variants": [{"key": "a", "base": True, "weight": 0.5, "value": "A"},
                     {"key": "b", "weight": 0.3, "value": "B"}],
    })
    assert answer["refused"] == []
    assert {(p["code"], p.get("field")) for p in answer["blockers"]} == {
        ("weights_not_100", "variants"), ("no_primary_goal", "goals")}
    assert not Experience.objects.filter(account=account).exists()

    refused = dry_run(client, {"key": "new", "name": "Hero", "variants": [{"key": "a b"}]})
    assert {p["code"] for p in refused["refused"]} == {"reserved_key", "invalid_variant_key"}
    unnamed = dry_run(client, {"key": "hero", "name": ""})
    assert [p["field"] for p in unnamed["refused"]] == ["name"]
    build.ab_test(account, key="taken")
    assert "duplicate_key" in {p["code"] for p in dry_run(client, {"key": "taken",
                                                                   "name": "X"})["refused"]}


def test_a_live_split_change_announces_its_new_phase_first(account) -> None:
    exp = lifecycle.activate(build.ab_test(account))
    client = signed_in(account, "marketer")
    renamed = dry_run(client, {"name": "Better name"}, existing=exp.key)
    assert renamed == {"refused": [], "blockers": [], "new_phase": "", "next_phase": 0}

    reweighted = dry_run(client, {"distribution": "custom", "variants": [
        {"uid": "0", "key": "control", "weight": 0.7}, {"uid": "1", "key": "bold",
                                                        "weight": 0.3}]}, existing=exp.key)
    assert reweighted["new_phase"] == "distribution changed"
    assert reweighted["next_phase"] == 2
    assert Phase.objects.filter(experience=exp).count() == 1  # nothing written

    locked = dry_run(client, {"key": "other-key"}, existing=exp.key)
    assert [p["code"] for p in locked["refused"]] == ["locked_field"]
    broken = dry_run(client, {"goals": []}, existing=exp.key)  # live: must stay runnable
    assert [p["code"] for p in broken["refused"]] == ["no_primary_goal"]


def test_a_bad_dry_run_request_is_refused_clearly(account) -> None:
    client = signed_in(account, "marketer")
    response = client.post("/experiences/_check/", "nope", content_type="application/json")
    assert response.status_code == 400 and response.json()["code"] == "invalid_json"
    response = client.post("/experiences/_check/", {"existing": "ghost", "changes": {}},
                           content_type="application/json")
    assert response.status_code == 404
    shape = dry_run(client, {"key": "k", "name": "n", "variants": "not a list"})
    assert shape["refused"][0]["field"].startswith("variants")


def test_a_drafts_page_lists_each_blocker_once_with_a_link_to_its_fix(account) -> None:
    exp = build.ab_test(account, goals=[])
    client = signed_in(account, "marketer")
    page = client.get(f"/experiences/{exp.key}/").content.decode()
    assert 'data-testid="activation-blockers"' in page
    assert f'href="/experiences/{exp.key}/edit/#goals" data-testid="fix-no_primary_goal"' in page
    assert 'data-testid="edit-experience"' in page

    refused = client.post(f"/experiences/{exp.key}/activate/", follow=True)
    text = refused.content.decode()
    assert "cannot be activated yet: 1 thing to fix, listed below." in text
    assert text.count("needs a primary goal") == 1


def test_the_list_offers_new_to_editors_only(account) -> None:
    assert 'data-testid="new-experience"' in signed_in(account, "marketer").get(
        "/experiences/").content.decode()
    assert 'data-testid="new-experience"' not in signed_in(account, "observer", name="olly").get(
        "/experiences/").content.decode()
