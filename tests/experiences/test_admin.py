"""The experiences admin: variants and goals inline, saved through the lifecycle (refusals
shown as messages, nothing saved), the status actions, goals; who may see it."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from cdp_site.models import Account
from experiences import config, lifecycle
from experiences.models import Experience, Goal
from tests.conftest import make_user
from tests.experiences.lifecycle_helpers import ab_test, goal

pytestmark = pytest.mark.django_db

URL = "/admin/experiences/experience/"



def signed_in(account: Account, *roles: str) -> Client:
    client = Client()
    client.force_login(make_user("_".join(roles), account, roles))
    return client


def inline(prefix: str, rows: list[dict[str, Any]], initial: int = 0) -> dict[str, Any]:
    data: dict[str, Any] = {f"{prefix}-TOTAL_FORMS": len(rows),
                            f"{prefix}-INITIAL_FORMS": initial,
                            f"{prefix}-MIN_NUM_FORMS": 0, f"{prefix}-MAX_NUM_FORMS": 1000}
    for i, row in enumerate(rows):
        data.update({f"{prefix}-{i}-{name}": value for name, value in row.items()})
    return data


def experience_form(**fields: Any) -> dict[str, Any]:
    return {"key": "hero-banner", "name": "Hero banner", "description": "", "type": "ab",
            "distribution": "equal", "value_type": "string", "traffic_allocation": "1",
            "target": "everyone", "seed": "", "hash_version": "2",
            "bandit_interval_minutes": "60", "bandit_burn_in_hours": "24", **fields}


def messages_of(response: Any) -> list[str]:
    return [str(m) for m in response.context["messages"]] if response.context else []


def test_an_experience_is_added_with_its_variants_and_goal(account: Account) -> None:
    booked = goal(account)
    client = signed_in(account, "experience_manager")
    response = client.post(f"{URL}add/", {
        **experience_form(),
        **inline("variants", [{"key": "control", "value": "Book now", "is_base": "on",
                               "content": "{}", "priority": "0"},
                              {"key": "bold", "value": "Book today!", "content": "{}",
                               "priority": "0"}]),
        **inline("experience_goals", [{"goal": booked.pk, "primary": "on"}]),
    })
    assert response.status_code == 302, response.content.decode()[:3000]
    exp = Experience.objects.get()
    assert exp.uid == "a" and exp.status == "draft"
    assert list(exp.variants.values_list("key", "uid", "value", "is_base")) == [
        ("control", "0", "Book now", True), ("bold", "1", "Book today!", False)]
    assert exp.experience_goals.get().primary
    assert client.get(f"{URL}{exp.pk}/change/").status_code == 200


def test_a_refused_save_shows_every_problem_and_saves_nothing(account: Account) -> None:
    client = signed_in(account, "admin")
    response = client.post(f"{URL}add/", {
        **experience_form(value_type="json"),
        **inline("variants", [{"key": "control", "value": "not json", "content": "{}",
                               "is_base": "on", "priority": "0"}]),
        **inline("experience_goals", []),
    }, follow=True)
    assert not Experience.objects.exists()
    shown = messages_of(response)
    assert any("JSON experience needs JSON" in m for m in shown), shown


def test_a_change_of_weights_on_an_active_experience_starts_a_new_phase(account: Account
                                                                        ) -> None:
    exp = lifecycle.activate(ab_test(account))
    client = signed_in(account, "admin")
    variants = list(exp.variants.order_by("position"))
    response = client.post(f"{URL}{exp.pk}/change/", {
        **experience_form(distribution="custom"),
        **inline("variants", [{"id": v.pk, "experience": exp.pk, "key": v.key, "value": v.value,
                               "content": "{}", "priority": "0", "weight": w,
                               **({"is_base": "on"} if v.is_base else {})}
                              for v, w in zip(variants, ["0.1", "0.9"], strict=True)],
                 initial=2),
        **inline("experience_goals", [{"id": link.pk, "experience": exp.pk, "goal": link.goal_id,
                                       "primary": "on"}
                                      for link in exp.experience_goals.all()], initial=1),
    })
    assert response.status_code == 302, response.content.decode()[:3000]
    exp.refresh_from_db()
    assert exp.phase == 2 and exp.distribution == "custom"
    assert config.active_config(account.pk).get("hero-banner").weights == (0.1, 0.9)


def test_status_actions_call_the_lifecycle_and_report_refusals(account: Account) -> None:
    ready = ab_test(account)
    unready = ab_test(account, "no-goal", goals=[])
    client = signed_in(account, "marketer")
    response = client.post(URL, {"action": "activate_experiences",
                                 "_selected_action": [ready.pk, unready.pk]}, follow=True)
    shown = messages_of(response)
    assert any("needs a primary goal" in m for m in shown), shown
    assert any("Activated 1 experience(s)" in m for m in shown), shown
    ready.refresh_from_db()
    unready.refresh_from_db()
    assert (ready.status, unready.status) == ("active", "draft")
    again = client.post(URL, {"action": "resume_experiences", "_selected_action": [ready.pk]},
                        follow=True)
    assert any("Cannot resume an experience that is active" in m for m in messages_of(again))
    client.post(URL, {"action": "pause_experiences", "_selected_action": [ready.pk]})
    ready.refresh_from_db()
    assert ready.status == "paused"


def test_complete_picks_a_winner_on_an_intermediate_page(account: Account) -> None:
    exp = lifecycle.activate(ab_test(account))
    client = signed_in(account, "admin")
    page = client.post(URL, {"action": "complete_experiences", "_selected_action": [exp.pk]})
    assert page.status_code == 200 and f'name="winner-{exp.pk}"' in page.content.decode()
    client.post(URL, {"action": "complete_experiences", "_selected_action": [exp.pk],
                      "apply": "1", f"winner-{exp.pk}": "bold"})
    exp.refresh_from_db()
    assert exp.status == "completed" and exp.winner.key == "bold"


def test_goals_are_saved_through_the_lifecycle(account: Account) -> None:
    client = signed_in(account, "goal_manager")
    added = client.post("/admin/experiences/goal/add/", {
        "key": "booked", "name": "Booked", "description": "", "event": "booked",
        "where": '[{"property": "price", "op": ">", "value": 10, "type": "number"}]',
        "stream": ""})
    assert added.status_code == 302, added.content.decode()[:2000]
    refused = client.post("/admin/experiences/goal/add/", {
        "key": "bad", "name": "Bad", "description": "", "event": "booked",
        "where": '[{"price": 10}]', "stream": ""})
    assert refused.status_code == 200 and "expected {property, op, value" in \
        refused.content.decode()
    assert list(Goal.objects.values_list("key", flat=True)) == ["booked"]


def test_who_sees_the_admin_pages(account: Account, other_account: Account) -> None:
    ab_test(other_account)
    observer = signed_in(account, "observer")
    assert observer.get(URL).status_code == 200
    assert "hero-banner" not in observer.get(URL).content.decode()  # another account's
    assert observer.get(f"{URL}add/").status_code == 403
    assert signed_in(account, "data_manager").get(URL).status_code == 403


def test_the_change_page_shows_the_chosen_audience_and_goal(account: Account) -> None:
    from tests.experiences.lifecycle_helpers import segmented

    exp = segmented(account, goals=[goal(account).key])
    page = signed_in(account, "admin").get(f"{URL}{exp.pk}/change/").content.decode()
    cuisine = exp.variants.get(key="cuisine").audience_id
    assert f'<option value="{cuisine}" selected>Cuisine</option>' in page
    assert f'<option value="{exp.goals.get().pk}" selected>Booked</option>' in page
