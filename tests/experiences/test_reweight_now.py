"""Bandits a person can watch move (issue 12, item 4): "reweight now" through the API and the
page, refused with the reason before every arm has its minimum of visitors; the schedule's
two settings validated and bounded; the next reweighting shown on the page."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from cdp_site.models import Account, AuditEvent
from experiences.models import BanditWeights, Experience
from tests.conftest import audit_events, make_token, make_user, token_client
from tests.experiences.lifecycle_helpers import goal
from tests.experiences.results_helpers import make_bandit, visitors
from tests.experiences.tracking_fixtures import ab_test

pytestmark = pytest.mark.django_db

URL = "/api/v1/experiences/button/reweight/"


@pytest.fixture
def bandit(account: Account) -> Experience:
    # a fresh phase: the burn-in (24 h) and the interval are not over, reweight now skips them
    return make_bandit(account, timezone.now() - timedelta(minutes=5),
                       bandit_burn_in_hours=24, bandit_interval_minutes=60)


def test_reweight_now_moves_the_split_at_once(admin_client: APIClient,
                                              bandit: Experience) -> None:
    visitors(bandit, "control", seen=300, converted=3)
    visitors(bandit, "bold", seen=300, converted=60)
    version = bandit.version
    response = admin_client.post(URL)
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["reason"] == "reweighted"
    assert body["weights"]["bold"] > 0.9 and body["weights"]["control"] >= 0.01
    assert body["arms"] == {"control": [300, 3], "bold": [300, 60]}
    assert body["bandit"]["reweights"] == 1
    assert body["bandit"]["last_weights"] == body["weights"]
    row = BanditWeights.objects.get()
    assert row.weights == body["weights"]
    bandit.refresh_from_db()
    assert bandit.version == version + 1
    [event] = audit_events(bandit.account, AuditEvent.Action.EXPERIENCE_UPDATED)
    assert event.changes["bandit_weights"][1] == body["weights"]


def test_reweight_now_is_refused_with_the_reason_before_the_minimum(
        admin_client: APIClient, bandit: Experience) -> None:
    visitors(bandit, "control", seen=300, converted=3)
    visitors(bandit, "bold", seen=42, converted=6)
    response = admin_client.post(URL)
    assert response.status_code == 409
    body = response.json()
    assert body["code"] == "too_few_visitors"
    assert "100" in body["message"] and "bold 42" in body["message"]
    assert not BanditWeights.objects.exists()
    assert not audit_events(bandit.account, AuditEvent.Action.EXPERIENCE_UPDATED)
    assert Experience.objects.get(pk=bandit.pk).version == bandit.version


def test_only_an_active_bandit_is_reweighted(admin_client: APIClient, account: Account,
                                             bandit: Experience) -> None:
    ab_test(account, key="plain", uid="p")
    refused = admin_client.post("/api/v1/experiences/plain/reweight/")
    assert refused.status_code == 409 and refused.json()["code"] == "not_a_bandit"
    Experience.objects.filter(pk=bandit.pk).update(status=Experience.Status.PAUSED)
    paused = admin_client.post(URL)
    assert paused.status_code == 409 and paused.json()["code"] == "not_running"


def test_reweight_now_needs_the_edit_permission(account: Account, bandit: Experience) -> None:
    visitors(bandit, "control", seen=300, converted=3)
    visitors(bandit, "bold", seen=300, converted=60)
    _token, observer = make_token(account, roles=("observer",))
    assert token_client(observer).post(URL).status_code == 403
    assert not BanditWeights.objects.exists()


@pytest.mark.parametrize(("field", "value", "code"), [
    ("bandit_interval_minutes", 5, "invalid_bandit_interval"),
    ("bandit_interval_minutes", 2**31, "invalid_bandit_interval"),
    ("bandit_interval_minutes", 10**30, "invalid_bandit_interval"),
    ("bandit_burn_in_hours", -1, "invalid_bandit_burn_in"),
    ("bandit_burn_in_hours", 2**40, "invalid_bandit_burn_in"),
    ("bandit_burn_in_hours", 721, "invalid_bandit_burn_in"),
])
def test_schedule_settings_out_of_range_are_a_400_with_a_code(
        admin_client: APIClient, account: Account, field: str, value: int, code: str) -> None:
    goal(account)
    body = {"key": "new-bandit", "name": "New bandit", "distribution": "bandit",
            "variants": [{"key": "a", "base": True}, {"key": "b"}],
            "goals": [{"goal": "booked", "primary": True}], field: value}
    response = admin_client.post("/api/v1/experiences/", body, format="json")
    assert response.status_code == 400, response.content
    assert response.json()["code"] == code
    assert response.json()["problems"][0]["field"] == field
    assert not Experience.objects.filter(key="new-bandit").exists()


def test_schedule_settings_in_range_are_kept(admin_client: APIClient, account: Account) -> None:
    goal(account)
    body = {"key": "quick", "name": "Quick", "distribution": "bandit",
            "variants": [{"key": "a", "base": True}, {"key": "b"}],
            "goals": [{"goal": "booked", "primary": True}],
            "bandit_interval_minutes": 15, "bandit_burn_in_hours": 0}
    response = admin_client.post("/api/v1/experiences/", body, format="json")
    assert response.status_code == 201, response.json()
    assert (response.json()["bandit_interval_minutes"],
            response.json()["bandit_burn_in_hours"]) == (15, 0)
    changed = admin_client.patch("/api/v1/experiences/quick/",
                                 {"bandit_burn_in_hours": 99999999999}, format="json")
    assert changed.status_code == 400 and changed.json()["code"] == "invalid_bandit_burn_in"


def test_the_schema_documents_the_schedule_settings(admin_client: APIClient) -> None:
    schema = admin_client.get("/api/schema/", {"format": "json"}).json()
    body = schema["components"]["schemas"]["ExperienceInputRequest"]["properties"]
    assert "15 to 10080" in body["bandit_interval_minutes"]["description"]
    assert "0 to 720" in body["bandit_burn_in_hours"]["description"]
    assert "post" in schema["paths"]["/api/v1/experiences/{key}/reweight/"]


# --------------------------------------------------------------------------- the page


@pytest.fixture
def page(account: Account) -> Client:
    client = Client()
    client.force_login(make_user("mia", account, roles=("experience_manager",)))
    return client


def test_the_page_shows_the_next_reweighting_and_reweights_now(
        page: Client, bandit: Experience) -> None:
    html = page.get("/experiences/button/").content.decode()
    due = (bandit.phases.get().started_at + timedelta(hours=24))
    assert 'data-testid="next-reweight"' in html
    assert f'datetime="{due.isoformat()}"' in html
    assert 'data-testid="reweight-now"' in html
    refused = page.post("/experiences/button/reweight/", follow=True)
    assert "every variant needs 100 visitors" in refused.content.decode()
    assert not BanditWeights.objects.exists()
    visitors(bandit, "control", seen=300, converted=3)
    visitors(bandit, "bold", seen=300, converted=60)
    done = page.post("/experiences/button/reweight/", follow=True).content.decode()
    assert "Reweighted: control" in done and "1 reweighting" in done
    assert BanditWeights.objects.count() == 1


def test_the_page_offers_no_reweight_to_a_viewer(account: Account, bandit: Experience) -> None:
    client = Client()
    client.force_login(make_user("obs", account, roles=("observer",)))
    assert 'data-testid="reweight-now"' not in client.get("/experiences/button/").content.decode()
    assert client.post("/experiences/button/reweight/").status_code == 403
