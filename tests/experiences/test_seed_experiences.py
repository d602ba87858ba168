"""The demo seed's three experiences (the issue's "Done when" use cases) are live and valid."""

from __future__ import annotations

from pathlib import Path

import pytest

from audiences.models import Audience
from cdp_site import access
from cdp_site.models import Account, WriteKey
from demo.seed import DEMO_EVENT_FIELDS, DEMO_STREAM, seed_demo
from experiences import config
from experiences.models import Experience, Goal
from profiles.models import Mapping

pytestmark = pytest.mark.django_db



def test_seed_makes_the_three_use_cases_active_once(tmp_path: Path) -> None:
    seed_demo(credentials_file=tmp_path / "demo.json")
    seed_demo(credentials_file=tmp_path / "demo.json")  # idempotent
    demo = Account.objects.get(slug="demo")
    snapshot = config.active_config(demo.pk)
    assert [e.key for e in snapshot.experiences] == ["homepage-hero", "book-button",
                                                     "cuisine-banner"]
    hero, bandit, cuisine = snapshot.experiences
    assert hero.type == "ab" and hero.serve == config.SERVE_SPLIT
    assert hero.primary_goal.event == "Trip Booked" and len(hero.goals) == 2
    assert bandit.distribution == "bandit" and bandit.weights == pytest.approx((1 / 3,) * 3)
    assert cuisine.serve == config.SERVE_SEGMENTS and cuisine.value_type == "json"
    assert cuisine.base.key == "travel-deals"
    assert [(v.key, v.audience) for v in cuisine.segments] == [("cuisine", "cuisine")]
    audience = Audience.objects.get(account=demo, slug="cuisine")
    assert audience.api_accessible and audience.rule == {"field": "taxonomy", "op": "=",
                                                         "value": "cuisine"}
    assert Experience.objects.filter(account=demo).count() == 3
    assert not Experience.objects.exclude(account=demo).exists()  # not in the sandbox


def test_seed_reuses_an_audience_the_audiences_seed_made(tmp_path: Path) -> None:
    seed_demo(credentials_file=tmp_path / "demo.json")
    demo = Account.objects.get(slug="demo")
    Experience.objects.filter(account=demo, key="cuisine-banner").delete()
    Audience.objects.filter(account=demo, slug="cuisine").update(slug="cuisine-lovers",
                                                                 api_accessible=False)
    seed_demo(credentials_file=tmp_path / "demo.json")
    assert Audience.objects.get(account=demo, slug="cuisine-lovers").api_accessible
    assert not Audience.objects.filter(account=demo, slug="cuisine").exists()
    cuisine = config.active_config(demo.pk).get("cuisine-banner")
    assert [v.audience for v in cuisine.segments] == ["cuisine-lovers"]


def test_the_demo_traffic_sees_and_converts_on_the_experiments(tmp_path: Path) -> None:
    """`make run`'s demo events (seed_demo, then seed_demo_events) show the A/B test and the
    bandit to visitors: each session's variant comes from the decision API (assignment
    stored), the tag's impressions name it, and bookings after an impression convert."""
    from django.core.management import call_command

    from experiences.models import Assignment, Conversion, DataQualityWarning, Impression
    from profiles.processing.pipeline import process_pending

    seed_demo(credentials_file=tmp_path / "demo.json")
    demo = Account.objects.get(slug="demo")
    call_command("seed_demo_events", days=2, sessions_per_slot=3)
    process_pending(account_id=demo.pk)

    for key in ("homepage-hero", "book-button"):
        experience = Experience.objects.get(account=demo, key=key)
        impressions = Impression.objects.filter(experience=experience)
        assert impressions.count() > 20, key
        # every impression is of the variant the visitor was assigned
        for impression in impressions:
            assert Assignment.objects.filter(experience=experience,
                                             visitor=impression.visitor,
                                             variant=impression.variant).exists()
        assert impressions.values("variant").distinct().count() == experience.variants.count()
    assert Conversion.objects.filter(account=demo, experience__key="book-button").exists()
    # the segmented banner: the recipes on cuisine pages (the page's taxonomy as a live
    # attribute), the travel deals elsewhere
    banner = Impression.objects.filter(experience__account=demo,
                                       experience__key="cuisine-banner")
    assert set(banner.values_list("variant__key", flat=True)) == {"cuisine", "travel-deals"}
    assert not DataQualityWarning.objects.filter(account=demo,
                                                 code="impression_not_assigned").exists()


def test_the_printed_key_the_goals_and_the_mappings_agree(tmp_path: Path) -> None:
    """The write key `make run` prints sends to the stream the demo's site and mappings use,
    and the goals name no stream: a conversion sent with the printed key counts."""
    credentials = seed_demo(credentials_file=tmp_path / "demo.json")
    demo = Account.objects.get(slug="demo")
    key = access.authenticate_write_key(credentials.write_key)
    assert key is not None and key.stream == DEMO_STREAM
    assert list(Goal.objects.filter(account=demo).values_list("stream", flat=True)) == ["", ""]
    streams = set(Mapping.objects.filter(account=demo, field__name__in=[
        name for name, *_rest in DEMO_EVENT_FIELDS]).values_list("stream", flat=True))
    assert streams == {DEMO_STREAM}


def test_an_older_demo_is_brought_into_agreement(tmp_path: Path) -> None:
    seed_demo(credentials_file=tmp_path / "demo.json")
    demo = Account.objects.get(slug="demo")
    Goal.objects.filter(account=demo).update(stream="web")  # as older seeds left them
    old = WriteKey.objects.get(account=demo, name="Demo website")
    old.stream = "default"
    old.save()
    credentials = seed_demo(credentials_file=tmp_path / "demo.json")
    key = access.authenticate_write_key(credentials.write_key)
    assert key is not None and key.stream == DEMO_STREAM and key.pk != old.pk
    assert set(Goal.objects.filter(account=demo).values_list("stream", flat=True)) == {""}
