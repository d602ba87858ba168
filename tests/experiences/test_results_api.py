"""GET /api/v1/experiences/{key}/results/ and …/results/csv/ (issue 12, item 3): the figures
of the results page as data, at full precision, per phase and per goal, with as_of and the
engine's settings; both in the OpenAPI schema."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from cdp_site.models import Account
from experiences import lifecycle, results, stats
from experiences.models import Experience, ExperienceGoal, Goal, Phase
from tests.conftest import make_token, token_client
from tests.experiences.results_helpers import make_bandit, visitors
from tests.experiences.tracking_fixtures import ab_test

pytestmark = pytest.mark.django_db

URL = "/api/v1/experiences/hero/results/"


@pytest.fixture
def hero(account: Account) -> Experience:
    exp = ab_test(account)
    Phase.objects.filter(experience=exp).update(started_at=timezone.now() - timedelta(days=3))
    signup = Goal.objects.create(account=account, key="signup", name="Sign-up", event="signup")
    ExperienceGoal.objects.create(account=account, experience=exp, goal=signup)
    visitors(exp, "control", seen=1200, converted=60, assigned_only=7)
    visitors(exp, "bold", seen=1180, converted=95)
    visitors(exp, "control", seen=0, converted=0)
    visitors(exp, "bold", seen=30, converted=12, goal=signup)
    visitors(exp, "control", seen=30, converted=3, goal=signup)
    return exp


def by_key(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {row["key"]: row for row in rows}


def test_results_are_the_page_figures_at_full_precision(admin_client: APIClient,
                                                         hero: Experience) -> None:
    response = admin_client.get(URL)
    assert response.status_code == 200, response.json()
    body = response.json()
    page = results.phase_results(hero)
    control, bold = body["variants"]
    assert control["key"] == "control" and control["is_base"]
    assert control["visitors"] == 1237 and control["impressions"]["visitors"] == 1230
    assert bold["primary"]["rate"] == 95 / 1210  # not rounded
    expected = stats.variant_results(stats.Counts(1230, 60), stats.Counts(1210, 95))
    assert bold["bayesian"]["chance_to_beat_control"] == pytest.approx(
        expected["bayesian"]["chance_to_beat_control"], abs=1e-12)
    assert bold["frequentist"]["p_value"] == pytest.approx(
        expected["frequentist"]["p_value"], rel=1e-12)
    assert bold["bayesian"]["credible_interval"] == pytest.approx(
        expected["bayesian"]["credible_interval"], rel=1e-12)
    for name in ("chance_to_be_best", "visible"):
        assert [row[name] for row in body["variants"]] == pytest.approx(
            [row[name] for row in page["variants"]])
    assert body["srm"]["p_value"] == pytest.approx(page["srm"]["p_value"])
    assert body["winner"] == {"variant": None, "reason": "too_early"}
    assert body["as_of"] == body["at"] and body["phase"] == 1
    assert body["engine"]["alpha"] == stats.ALPHA
    assert body["engine"]["thresholds"] == {"min_impressions": 1000, "min_conversions": 30,
                                            "winner_chance": 0.95, "min_days": 14.0}
    assert body["engine"]["bandit"] is None
    assert body["phases"] == [{"number": 1, "started_at": body["started_at"], "ended_at": None,
                               "reason": "", "current": True}]
    results.snapshot(hero)
    history = admin_client.get(URL).json()["history"]
    assert len(history["times"]) == 2  # the snapshot, then now
    assert history["conversion_rate"]["bold"][-1] == bold["primary"]["rate"]
    assert history["split"]["series"] == {"control": [0.5, 0.5], "bold": [0.5, 0.5]}


def test_results_are_given_per_goal(admin_client: APIClient, hero: Experience) -> None:
    body = admin_client.get(URL).json()
    goals = [g["key"] for g in body["by_goal"]]
    assert goals == ["booked-hero", "signup"]  # the primary first
    signup = by_key(body["by_goal"][1]["variants"])
    assert (signup["bold"]["converters"], signup["bold"]["visitors"]) == (12, 1210)
    expected = stats.variant_results(stats.Counts(1230, 3), stats.Counts(1210, 12))
    assert signup["bold"]["bayesian"]["uplift"] == pytest.approx(
        expected["bayesian"]["uplift"], rel=1e-12)
    assert signup["bold"]["frequentist"]["p_value"] == pytest.approx(
        expected["frequentist"]["p_value"], rel=1e-12)
    assert signup["control"]["bayesian"] is None  # the control is the baseline
    primary = by_key(body["by_goal"][0]["variants"])
    assert primary["bold"]["bayesian"] == by_key(body["variants"])["bold"]["bayesian"]


def test_an_earlier_phase_is_read_with_the_phase_parameter(
        admin_client: APIClient, account: Account, hero: Experience) -> None:
    hero.refresh_from_db()
    lifecycle.update_split(hero, None, weights={"control": 0.3, "bold": 0.7})
    visitors(Experience.objects.get(pk=hero.pk), "bold", seen=5, converted=1)
    now = admin_client.get(URL).json()
    assert now["phase"] == 2 and by_key(now["variants"])["bold"]["impressions"]["visitors"] == 5
    before = admin_client.get(URL, {"phase": 1}).json()
    assert before["phase"] == 1 and before["ended_at"] is not None
    assert by_key(before["variants"])["bold"]["impressions"]["visitors"] == 1210
    assert [p["current"] for p in before["phases"]] == [False, True]


@pytest.mark.parametrize(("phase", "status", "code"), [
    ("x", 400, "invalid_phase"), ("0", 400, "invalid_phase"), ("-1", 400, "invalid_phase"),
    ("99999999999999999999", 400, "invalid_phase"), ("7", 404, "no_results")])
def test_a_bad_phase_is_a_clear_error(admin_client: APIClient, hero: Experience, phase: str,
                                      status: int, code: str) -> None:
    for url in (URL, URL + "csv/"):
        response = admin_client.get(url, {"phase": phase})
        assert response.status_code == status
        assert response.json()["code"] == code and response.json()["message"]


def test_a_draft_has_no_results_yet(admin_client: APIClient, account: Account) -> None:
    ab_test(account, key="later", uid="l", status="draft")
    Phase.objects.filter(experience__key="later").delete()
    Experience.objects.filter(key="later").update(phase=0)
    response = admin_client.get("/api/v1/experiences/later/results/")
    assert response.status_code == 404 and response.json()["code"] == "no_results"


def test_the_csv_has_one_row_per_goal_and_variant(admin_client: APIClient,
                                                  hero: Experience) -> None:
    response = admin_client.get(URL + "csv/", HTTP_ACCEPT="text/csv")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert 'filename="hero-phase-1-results.csv"' in response["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert [(r["goal"], r["variant"]) for r in rows] == [
        ("booked-hero", "control"), ("booked-hero", "bold"), ("signup", "control"),
        ("signup", "bold")]
    data = admin_client.get(URL).json()
    bold = by_key(data["variants"])["bold"]
    assert float(rows[1]["rate"]) == bold["primary"]["rate"]  # full precision round-trips
    assert float(rows[1]["p_value"]) == bold["frequentist"]["p_value"]
    assert float(rows[1]["credible_interval_low"]) == bold["bayesian"]["credible_interval"][0]
    assert rows[0]["uplift"] == "" and rows[0]["is_base"] == "true"
    assert rows[3]["converters"] == "12" and rows[3]["primary_goal"] == "false"


def test_csv_cells_cannot_start_a_formula(admin_client: APIClient, hero: Experience) -> None:
    hero.variants.filter(key="bold").update(name="=HYPERLINK(\"http://x\")")
    rows = list(csv.DictReader(io.StringIO(admin_client.get(URL + "csv/").content.decode())))
    assert rows[1]["variant_name"].startswith("'=")


def test_a_bandit_reports_its_engine_and_schedule(admin_client: APIClient,
                                                  account: Account) -> None:
    start = timezone.now() - timedelta(hours=2)
    make_bandit(account, start, bandit_burn_in_hours=5, bandit_interval_minutes=30)
    engine = admin_client.get("/api/v1/experiences/button/results/").json()["engine"]["bandit"]
    assert engine["algorithm"] == "thompson_sampling" and engine["min_share"] == 0.01
    assert engine["interval_minutes"] == 30 and engine["burn_in_hours"] == 5
    assert engine["next_reweight_at"] == (start + timedelta(hours=5)).isoformat()
    assert engine["reweights"] == 0 and engine["last_reweight_at"] is None


def test_results_need_the_view_permission_and_stay_in_the_account(
        account: Account, other_account: Account, hero: Experience) -> None:
    _token, secret = make_token(other_account)
    assert token_client(secret).get(URL).status_code == 404
    _token, observer = make_token(account, roles=("observer",))
    assert token_client(observer).get(URL).status_code == 200
    assert token_client(observer).get(URL + "csv/").status_code == 200
    _token, data_manager = make_token(account, roles=("data_manager",))
    refused = token_client(data_manager).get(URL)
    assert refused.status_code == 403 and refused.json()["code"]


def test_the_schema_describes_both_endpoints(admin_client: APIClient) -> None:
    schema = admin_client.get("/api/schema/", {"format": "json"}).json()
    paths = schema["paths"]
    results_op = paths["/api/v1/experiences/{key}/results/"]["get"]
    assert [p["name"] for p in results_op["parameters"] if p["in"] == "query"] == ["phase"]
    ref = results_op["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    component = schema["components"]["schemas"][ref.rsplit("/", 1)[-1]]
    assert {"as_of", "engine", "by_goal", "variants", "srm", "warnings", "history"} <= set(
        component["properties"])
    csv_op = paths["/api/v1/experiences/{key}/results/csv/"]["get"]
    assert "text/csv" in csv_op["responses"]["200"]["content"]
