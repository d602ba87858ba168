"""Issue 6, "Done when": the demo seed's three experience use cases, end to end through HTTP and
the real pipeline (collection -> processing -> tracking step -> results).

(a) homepage-hero, an A/B test judged by "Trip Booked": visitors get decisions (POST
    /api/v1/decide and OFREP), impressions arrive (Segment "Experiment Viewed" in a batch, the
    Personalize events endpoint, the Lytics tag), conversions fire through the tag, and the
    results show per variant (the API of experiences.results and the experience page).
(b) book-button, the same as a multi-armed bandit: a simulated run (a fixed seed, true rates
    4 %, 10 % and 5 %) with the reweight task run after each simulated hour shifts traffic to
    the better arm: the BanditWeights history and the visitors actually assigned say so.
(c) cuisine-banner, segmented: a page view with taxonomy = "cuisine" puts the visitor in the
    cuisine audience (processing, real-time membership) and the next decision serves the
    recipes banner; everyone else gets the travel deals.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import numpy as np
import pytest
from django.test import Client
from django.utils import timezone

from cdp_site.models import Account
from demo.seed import seed_demo
from experiences import bandit_schedule, config, results
from experiences.models import Assignment, BanditWeights, Conversion, Experience, Impression, Phase
from profiles.processing.pipeline import process_pending
from tests.conftest import PASSWORD, make_user, make_write_key

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_config() -> Any:
    config.invalidate()
    yield
    config.invalidate()


class Site:
    """The demo account as a website talks to it: write keys (the seed's and another, both on
    the web stream), the tag's account id, and the pipeline run as the worker runs it."""

    def __init__(self, tmp_path: Path) -> None:
        credentials = seed_demo(credentials_file=tmp_path / "demo.json")
        self.account = Account.objects.get(slug="demo")
        self.key = credentials.write_key
        self.web_key = make_write_key(self.account, name="Website (web)", stream="web")[1]
        self.aid = self.account.aid
        self.http = Client()

    def decide(self, uid: str, *experiences: str) -> dict[str, dict[str, Any]]:
        body: dict[str, Any] = {"uid": uid}
        if experiences:
            body["experiences"] = list(experiences)
        response = self.http.post("/api/v1/decide", json.dumps(body),
                                  content_type="application/json",
                                  HTTP_AUTHORIZATION=f"Bearer {self.key}")
        assert response.status_code == 200, response.content
        return {d["experience"]: d for d in response.json()["decisions"]}

    def ofrep(self, uid: str, flag: str) -> dict[str, Any]:
        response = self.http.post(f"/ofrep/v1/evaluate/flags/{flag}",
                                  json.dumps({"context": {"targetingKey": uid}}),
                                  content_type="application/json",
                                  HTTP_AUTHORIZATION=f"Bearer {self.key}")
        assert response.status_code == 200, response.content
        return response.json()

    def batch(self, messages: list[dict[str, Any]]) -> None:
        """Segment's batch endpoint (analytics.js, the server libraries) on the web stream."""
        for start in range(0, len(messages), 2000):
            response = self.http.post("/v1/batch",
                                      json.dumps({"batch": messages[start:start + 2000]}),
                                      content_type="application/json",
                                      HTTP_AUTHORIZATION=f"Bearer {self.web_key}")
            assert response.status_code == 200, response.content
            assert "rejected" not in response.json()

    def tag(self, stream: str = "web", **data: str) -> None:
        """One hit of the Lytics tag (jstag): the data flattened into the query string."""
        response = self.http.get(f"/c/{self.aid}/{stream}?{urlencode(data)}")
        assert response.status_code == 200, response.content

    def personalize_impression(self, uid: str, experience_uid: str, variant_uid: str) -> Any:
        response = self.http.post(
            "/personalize/events",
            json.dumps([{"type": "IMPRESSION", "experienceShortUid": experience_uid,
                         "variantShortUid": variant_uid}]),
            content_type="text/plain", HTTP_X_PROJECT_UID=self.aid,
            HTTP_X_CS_PERSONALIZE_USER_UID=uid)
        assert response.status_code == 200, response.content
        return response.json()

    def process(self) -> None:
        while process_pending(account_id=self.account.pk):
            pass

    def experience(self, key: str) -> Experience:
        return Experience.objects.get(account=self.account, key=key)


@pytest.fixture
def site(tmp_path: Path) -> Site:
    return Site(tmp_path)


def viewed(uid: str, experience: str, variant: str, at: datetime | None = None
           ) -> dict[str, Any]:
    message = {"type": "track", "event": "Experiment Viewed", "anonymousId": uid,
               "properties": {"experiment_id": experience, "variation_id": variant}}
    if at is not None:
        message["timestamp"] = at.isoformat()
    return message


def booked(uid: str, at: datetime, revenue: float = 420.0) -> dict[str, Any]:
    return {"type": "track", "event": "Trip Booked", "anonymousId": uid,
            "properties": {"revenue": revenue}, "timestamp": at.isoformat()}


# --------------------------------------------------------------------------- (a) the A/B test


HERO_RATES = {"control": 0.12, "autumn-escape": 0.24}


def test_an_ab_test_with_a_conversion_event_end_to_end(site: Site) -> None:
    hero = site.experience("homepage-hero")
    assert hero.status == "active" and hero.type == "ab"
    rng = np.random.default_rng(20261123)
    given: dict[str, str] = {}
    for n in range(600):
        uid = f"hero-visitor-{n}"
        decision = site.decide(uid)["homepage-hero"]
        assert decision["in_experiment"] and decision["reason"] == "SPLIT"
        given[uid] = decision["variant"]
    # OFREP answers the same variant for the same visitor (sticky)
    assert site.ofrep("hero-visitor-0", "homepage-hero")["variant"] == given["hero-visitor-0"]
    split = Counter(given.values())
    assert set(split) == set(HERO_RATES) and min(split.values()) > 250

    # impressions: most in one Segment batch, some through the Personalize events endpoint,
    # a few through the tag; a repeat view counts the visitor once
    uids = list(given)
    variants = {v.key: v.uid for v in hero.variants.all()}
    site.batch([viewed(uid, "homepage-hero", given[uid]) for uid in uids[:500]]
               + [viewed(uid, hero.uid, variants[given[uid]]) for uid in uids[:50]])
    for uid in uids[500:580]:
        answer = site.personalize_impression(uid, hero.uid, variants[given[uid]])
        assert answer["impressions"] == {"counted": 1}
    for uid in uids[580:]:
        site.tag(_uid=uid, event="Experiment Viewed", experiment_id="homepage-hero",
                 variation_id=given[uid])
    assert Impression.objects.filter(experience=hero).count() == 80  # Personalize: at once
    site.process()
    assert Impression.objects.filter(experience=hero).count() == 600
    assert sum(Impression.objects.filter(experience=hero).values_list("count", flat=True)) == 650

    # conversions: "Trip Booked" through the tag on the web stream, a day later; some twice
    converted = [uid for uid in uids if rng.random() < HERO_RATES[given[uid]]]
    for uid in converted:
        site.tag(_uid=uid, event="Trip Booked", revenue="420")
    for uid in converted[:10]:
        site.tag(_uid=uid, event="Trip Booked", revenue="99")
    site.tag(_uid="never-saw-it", event="Trip Booked")  # no impression: not a conversion
    site.process()
    conversions = Conversion.objects.filter(experience=hero, goal__key="trip-booked")
    assert conversions.count() == len(converted)
    assert sum(conversions.values_list("count", flat=True)) == len(converted) + 10

    # results per variant
    answer = results.phase_results(hero)
    rows = {row["key"]: row for row in answer["variants"]}
    for key in HERO_RATES:
        expected = [uid for uid in converted if given[uid] == key]
        assert rows[key]["visitors"] == split[key]
        assert rows[key]["impressions"]["visitors"] == split[key]
        assert rows[key]["primary"]["visitors"] == len(expected)
        assert rows[key]["primary"]["rate"] == pytest.approx(len(expected) / split[key])
    assert answer["visible"]  # at least 30 conversions in each arm
    autumn = rows["autumn-escape"]
    assert autumn["bayesian"]["uplift"] > 0.4
    assert autumn["bayesian"]["chance_to_beat_control"] > 0.99
    assert autumn["frequentist"]["p_value"] < 0.01
    assert not answer["srm"]["mismatch"]
    assert answer["winner"]["reason"] == "too_early"  # not 14 days yet

    # and on the experience page
    make_user("marketer", site.account, roles=["marketer"])
    browser = Client()
    assert browser.login(username="marketer", password=PASSWORD)
    html = browser.get("/experiences/homepage-hero/").content.decode()
    for key in HERO_RATES:
        row = html.split(f'data-variant="{key}"', 1)[1].split("</tr>", 1)[0]
        assert f'data-testid="visitors">{split[key]}<' in row
        assert f'{rows[key]["primary"]["rate"] * 100:.2f} %' in row
    assert 'data-testid="uplift">+' in html


# --------------------------------------------------------------------------- (b) the bandit


BANDIT_RATES = {"book-now": 0.04, "reserve": 0.10, "check-dates": 0.05}
FIRST_ROUND = 450
ROUND = 300
ROUNDS = 6


def test_the_same_as_a_bandit_shifts_traffic_to_the_better_arm(site: Site) -> None:
    bandit = site.experience("book-button")
    assert bandit.distribution == "bandit"
    # as if activated three days ago: every simulated hour below is in the past
    start = timezone.now().replace(microsecond=0) - timedelta(days=3)
    Phase.objects.filter(experience=bandit, number=1).update(started_at=start)
    burn_in = start + timedelta(hours=bandit.bandit_burn_in_hours)
    rng = np.random.default_rng(6)
    shares: list[dict[str, float]] = []
    for round_number in range(ROUNDS + 1):
        hour = burn_in + timedelta(hours=round_number)
        visitors = FIRST_ROUND if round_number == 0 else ROUND
        given = {}
        for n in range(visitors):
            uid = f"bandit-{round_number}-{n}"
            decision = site.decide(uid, "book-button")["book-button"]
            assert decision["in_experiment"]
            given[uid] = decision["variant"]
        counts = Counter(given.values())
        shares.append({key: counts[key] / visitors for key in BANDIT_RATES})
        messages = []
        for i, (uid, variant) in enumerate(given.items()):
            seen_at = hour - timedelta(minutes=50) + timedelta(seconds=i)
            messages.append(viewed(uid, "book-button", variant, seen_at))
            if rng.random() < BANDIT_RATES[variant]:
                messages.append(booked(uid, seen_at + timedelta(minutes=5)))
        site.batch(messages)
        site.process()
        outcome = bandit_schedule.reweight_due(now=hour)
        assert [o.key for o in outcome if o.reweighted] == ["book-button"]

    history = list(BanditWeights.objects.filter(experience=bandit).order_by("at"))
    assert len(history) == ROUNDS + 1
    assert [row.at for row in history] == [burn_in + timedelta(hours=h)
                                           for h in range(ROUNDS + 1)]
    reserve = [row.weights["reserve"] for row in history]
    # from the phase's equal split to the better arm, the others held at the 1 % floor
    assert all(weight > 0.9 for weight in reserve)
    assert history[-1].weights == pytest.approx({"book-now": 0.01, "reserve": 0.98,
                                                 "check-dates": 0.01})
    assert all(min(row.weights.values()) >= 0.01 - 1e-9 for row in history)
    assert all(sum(row.weights.values()) == pytest.approx(1) for row in history)
    final = history[-1].arms
    assert sum(users for users, _c in final.values()) == FIRST_ROUND + ROUND * ROUNDS

    # the visitors actually assigned follow the weights: a third each at first, then mostly
    # the better arm
    assert all(0.25 < share < 0.42 for share in shares[0].values())
    assert shares[-1]["reserve"] > 0.7
    late = Counter(Assignment.objects.filter(experience=bandit, visitor__startswith="bandit-6-")
                   .values_list("variant__key", flat=True))
    assert late.most_common(1)[0][0] == "reserve"
    # a visitor keeps their variant whatever the weights became
    first = site.decide("bandit-0-0", "book-button")["book-button"]
    assert (first["detail"], first["variant"]) == ("sticky", Assignment.objects.get(
        experience=bandit, visitor="bandit-0-0").variant.key)

    # the results hold the bandit to the splits it ran with: no sample ratio mismatch
    answer = results.phase_results(bandit)
    assert not answer["srm"]["mismatch"]
    best = {row["key"]: row["chance_to_be_best"] for row in answer["variants"]}
    assert max(best, key=best.get) == "reserve"
    split = results.history(bandit)["split"]
    assert split["series"]["reserve"][0] == pytest.approx(1 / 3)
    assert split["series"]["reserve"][-1] == pytest.approx(reserve[-1])


# --------------------------------------------------------------------------- (c) segmented


def test_a_segmented_experience_serves_the_cuisine_banner_to_the_cuisine_audience(
        site: Site) -> None:
    banner = site.experience("cuisine-banner")
    assert banner.type == "segmented"
    # three visitors read pages: one cuisine article, one travel page, one sends nothing
    site.tag(stream="default", _uid="reader-cuisine", _e="pv", url="/articles/carbonara",
             taxonomy="cuisine")
    site.tag(stream="default", _uid="reader-travel", _e="pv", url="/destinations/lisbon",
             taxonomy="travel")
    before = site.decide("reader-cuisine", "cuisine-banner")["cuisine-banner"]
    assert before["variant"] == "travel-deals"  # not processed yet: no profile, no audience
    site.process()

    cuisine = site.decide("reader-cuisine", "cuisine-banner")["cuisine-banner"]
    assert (cuisine["variant"], cuisine["reason"]) == ("cuisine", "TARGETING_MATCH")
    assert cuisine["value"] == {"headline": "New Italian recipes",
                                "image": "/static/demo/pasta.jpg"}
    assert cuisine["content"] == {"link": "/articles/italian-recipes"}
    for uid in ("reader-travel", "someone-new"):
        other = site.decide(uid, "cuisine-banner")["cuisine-banner"]
        assert (other["variant"], other["reason"]) == ("travel-deals", "STATIC")
        assert other["value"]["headline"] == "This week's travel deals"
    # OFREP serves the same JSON value
    flag = site.ofrep("reader-cuisine", "cuisine-banner")
    assert flag["value"]["headline"] == "New Italian recipes"
    assert site.ofrep("reader-travel", "cuisine-banner")["value"]["headline"] == \
        "This week's travel deals"

    # a later page view on travel content moves the reader out again
    site.tag(stream="default", _uid="reader-cuisine", _e="pv", url="/deals",
             taxonomy="travel")
    site.process()
    assert site.decide("reader-cuisine", "cuisine-banner")["cuisine-banner"]["variant"] == \
        "travel-deals"

    # impressions of the segmented variants count, and results show per variant
    site.batch([viewed("reader-travel", "cuisine-banner", "travel-deals"),
                viewed("someone-new", "cuisine-banner", "travel-deals")])
    site.personalize_impression("reader-cuisine", banner.uid, "1")
    site.process()
    rows = {r["key"]: r for r in results.phase_results(banner)["variants"]}
    assert rows["travel-deals"]["impressions"]["visitors"] == 2
    assert rows["cuisine"]["impressions"]["visitors"] == 1

