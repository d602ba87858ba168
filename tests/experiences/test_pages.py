"""Experience pages: the list (status, type, variants, visitors, conversion rate) and an
experience's page (summary, variants, results table, charts data, SRM and data-quality
warnings, winner suggestion), with the lifecycle actions for members allowed to edit."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from experiences import config, lifecycle
from experiences.models import DataQualityWarning, Experience, Phase, ResultSnapshot
from tests.conftest import PASSWORD, make_account, make_user
from tests.experiences import lifecycle_helpers as build
from tests.experiences.results_helpers import visitors

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_config() -> Any:
    config.invalidate()
    yield
    config.invalidate()


def signed_in(account, *roles: str, name: str = "mara") -> Client:
    make_user(name, account, roles=roles)
    client = Client()
    assert client.login(username=name, password=PASSWORD)
    return client


@pytest.fixture
def hero(account) -> Experience:
    return lifecycle.activate(build.ab_test(account))


@pytest.fixture
def marketer(account) -> Client:
    return signed_in(account, "marketer")


def charts(response) -> dict[str, Any]:
    html = response.content.decode()
    start = html.index('<script id="experience-charts" type="application/json">')
    body = html[start:].split(">", 1)[1].split("</script>", 1)[0]
    return json.loads(body)


# --------------------------------------------------------------------------- access


def test_pages_need_a_sign_in_and_the_permission(account, hero) -> None:
    anonymous = Client().get("/experiences/")
    assert anonymous.status_code == 302 and "/admin/login/" in anonymous["Location"]
    data_manager = signed_in(account, "data_manager", name="dana")
    assert data_manager.get("/experiences/").status_code == 403
    assert data_manager.get("/experiences/hero-banner/").status_code == 403
    nav = data_manager.get("/dashboard/").content.decode()
    assert 'data-section="experiences"' not in nav


def test_the_nav_links_the_list(account, hero, marketer) -> None:
    page = marketer.get("/dashboard/").content.decode()
    assert 'href="/experiences/" data-section="experiences"' in page


# --------------------------------------------------------------------------- the list


def test_the_list(account, hero, marketer) -> None:
    visitors(hero, "control", seen=60, converted=3)
    visitors(hero, "bold", seen=40, converted=7)
    lifecycle.create_experience(account, key="draft-one", name="Draft one",
                                variants=[{"key": "a", "base": True}, {"key": "b"}])
    other = make_account("Globex")
    lifecycle.activate(build.ab_test(other, key="not-mine"))
    page = marketer.get("/experiences/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "not-mine" not in html
    row = html.split('data-experience="hero-banner"', 1)[1].split("</tr>", 1)[0]
    assert "A/B test" in row and ">Active<" in row and "control · bold" in row
    assert '<td class="num" data-testid="visitors">100</td>' in row
    assert "10.00 %" in row  # 10 converted of 100 who saw it
    draft = html.split('data-experience="draft-one"', 1)[1].split("</tr>", 1)[0]
    assert ">Draft<" in draft and "\u2013" in draft
    only_drafts = marketer.get("/experiences/?status=draft").content.decode()
    assert "draft-one" in only_drafts and 'data-experience="hero-banner"' not in only_drafts


def test_an_empty_list(marketer) -> None:
    assert 'data-testid="no-experiences"' in marketer.get("/experiences/").content.decode()


# --------------------------------------------------------------------------- one experience


def test_unknown_or_foreign_experiences_are_not_found(account, marketer) -> None:
    lifecycle.activate(build.ab_test(make_account("Globex"), key="theirs"))
    assert marketer.get("/experiences/theirs/").status_code == 404
    assert marketer.get("/experiences/nope/").status_code == 404


def test_results_wait_for_enough_data(account, hero, marketer) -> None:
    visitors(hero, "control", seen=120, converted=6, assigned_only=30)
    visitors(hero, "bold", seen=100, converted=9)
    html = marketer.get("/experiences/hero-banner/").content.decode()
    row = html.split('data-variant="control"', 1)[1].split("</tr>", 1)[0]
    assert '<td class="num" data-testid="visitors">150</td>' in row
    assert "5.00 %" in row
    assert 'data-testid="not-enough-data"' in html and "No winner yet" in html
    assert 'data-testid="uplift"' not in html


def test_results_against_control_and_a_suggested_winner(account, hero, marketer) -> None:
    Phase.objects.filter(experience=hero).update(started_at=timezone.now() - timedelta(days=15))
    visitors(hero, "control", seen=1500, converted=45)
    visitors(hero, "bold", seen=1500, converted=90)
    html = marketer.get("/experiences/hero-banner/").content.decode()
    bold = html.split('data-variant="bold"', 1)[1].split("</tr>", 1)[0]
    assert 'data-testid="uplift">+100.0 %' in bold
    assert 'data-testid="chance-to-beat">99.7 %' in bold
    assert 'data-testid="p-value">0.005<' in bold
    assert "Suggested winner: bold" in html
    assert 'data-testid="srm-warning"' not in html


def test_srm_and_data_quality_warnings_are_shown(account, hero, marketer) -> None:
    visitors(hero, "control", seen=1000, converted=40)
    visitors(hero, "bold", seen=1300, converted=50)
    DataQualityWarning.objects.create(account=account, experience=hero,
                                      code="impression_not_assigned", count=7)
    html = marketer.get("/experiences/hero-banner/").content.decode()
    assert 'data-testid="srm-warning"' in html
    warnings = html.split('data-testid="quality-warnings"', 1)[1].split("</div>", 2)[0]
    assert "not given" in warnings and "<strong>7</strong>" in warnings


def test_charts_come_from_snapshots_and_the_split(account, hero, marketer) -> None:
    visitors(hero, "control", seen=100, converted=10)
    visitors(hero, "bold", seen=100, converted=20)
    data = charts(marketer.get("/experiences/hero-banner/"))  # no snapshot yet: now only
    assert data["conversion_rate"] == {"control": [0.1], "bold": [0.2]}
    marketer.post("/experiences/hero-banner/snapshot/")
    data = charts(marketer.get("/experiences/hero-banner/"))  # the snapshot, then now
    assert data["conversion_rate"] == {"control": [0.1, 0.1], "bold": [0.2, 0.2]}
    assert len(data["times"]) == 2
    assert data["split"]["series"] == {"control": [0.5, 0.5], "bold": [0.5, 0.5]}
    assert ResultSnapshot.objects.filter(experience=hero).count() == 1


def test_variants_and_phases(account, hero, marketer) -> None:
    lifecycle.update_split(hero, weights={"control": 0.3, "bold": 0.7}, reason="more bold")
    visitors(hero, "bold", seen=5, phase=1)
    html = marketer.get("/experiences/hero-banner/").content.decode()
    assert 'data-testid="phases"' in html and "Phase 2" in html
    assert "Book today!" in html  # the bold variant's value as its preview
    assert "30 %" in html and "70 %" in html
    old = marketer.get("/experiences/hero-banner/?phase=1").content.decode()
    bold = old.split('data-variant="bold"', 1)[1].split("</tr>", 1)[0]
    assert 'data-testid="impressions">5' in bold


def test_a_segmented_experience_page(account, marketer) -> None:
    exp = lifecycle.activate(build.segmented(account))
    visitors(exp, "cuisine", seen=4, converted=0, goal=build.goal(account))
    html = marketer.get("/experiences/cuisine-banner/").content.decode()
    assert "Segmented" in html and "New Italian recipes" in html
    assert "Chance to be best" not in html and 'data-testid="best-chart"' not in html


# --------------------------------------------------------------------------- actions


def test_observers_see_no_actions_and_cannot_post_them(account, hero) -> None:
    observer = signed_in(account, "observer", name="olly")
    html = observer.get("/experiences/hero-banner/").content.decode()
    assert 'data-testid="actions"' not in html and 'data-testid="take-snapshot"' not in html
    assert observer.post("/experiences/hero-banner/pause/").status_code == 403
    assert Experience.objects.get(pk=hero.pk).status == "active"


def test_pause_resume_and_complete_with_a_winner(account, hero, marketer) -> None:
    html = marketer.get("/experiences/hero-banner/").content.decode()
    assert 'data-testid="action-pause"' in html and 'data-testid="action-complete"' in html
    assert 'data-testid="action-resume"' not in html
    response = marketer.post("/experiences/hero-banner/pause/", follow=True)
    assert Experience.objects.get(pk=hero.pk).status == "paused"
    assert "Hero banner paused." in response.content.decode()
    marketer.post("/experiences/hero-banner/resume/")
    assert Experience.objects.get(pk=hero.pk).status == "active"
    response = marketer.post("/experiences/hero-banner/complete/", {"winner": "bold"},
                             follow=True)
    done = Experience.objects.get(pk=hero.pk)
    assert (done.status, done.winner.key) == ("completed", "bold")
    assert "Everyone now gets bold." in response.content.decode()
    assert ResultSnapshot.objects.filter(experience=hero).count() == 1  # the final figures
    assert 'data-testid="actions"' not in response.content.decode()


def test_refusals_are_shown_and_change_nothing(account, hero, marketer) -> None:
    response = marketer.post("/experiences/hero-banner/resume/", follow=True)
    assert "Cannot resume an experience that is active" in response.content.decode()
    response = marketer.post("/experiences/hero-banner/complete/", {"winner": "nope"},
                             follow=True)
    assert "no variant" in response.content.decode()
    assert Experience.objects.get(pk=hero.pk).status == "active"
    draft = lifecycle.create_experience(account, key="half", name="Half",
                                        variants=[{"key": "a", "base": True}])
    response = marketer.post("/experiences/half/activate/", follow=True)
    assert "fewer than two" in response.content.decode().lower() or \
        "two variants" in response.content.decode()
    assert Experience.objects.get(pk=draft.pk).status == "draft"
    assert marketer.post("/experiences/hero-banner/explode/", follow=True).status_code == 200
    assert marketer.get("/experiences/hero-banner/pause/").status_code == 405
