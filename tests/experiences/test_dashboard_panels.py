"""The dashboard's panels from the apps above profiles: the largest audiences with their size
and its 7-day change, and the active experiences with their leader and the chance it is best,
each linking into its area; members whose roles do not open an area do not get its panel."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from audiences.models import AudienceSize
from experiences import lifecycle
from tests.experiences import lifecycle_helpers as build
from tests.experiences.results_helpers import visitors
from tests.experiences.test_pages import signed_in

pytestmark = pytest.mark.django_db


def test_the_dashboard_shows_audiences_and_active_experiences(account) -> None:
    cuisine = build.audience(account, "cuisine")
    cuisine.size = 1500
    cuisine.save()
    for days_ago, size in ((6, 1200), (3, 1350), (0, 1500)):
        AudienceSize.objects.create(account=account, audience=cuisine, size=size,
                                    at=timezone.now() - timedelta(days=days_ago, minutes=1))
    hero = lifecycle.activate(build.ab_test(account))
    visitors(hero, "control", seen=1200, converted=30)
    visitors(hero, "bold", seen=1200, converted=80)
    build.ab_test(account, key="still-a-draft")

    html = signed_in(account, "marketer").get("/dashboard/").content.decode()

    audiences = html.split('data-testid="dashboard-audiences"', 1)[1].split("</section>", 1)[0]
    assert 'href="/audiences/cuisine/"' in audiences
    assert "1,500 profiles" in audiences and '<span data-testid="change">+300</span>' in audiences
    panel = html.split('data-testid="dashboard-experiences"', 1)[1].split("</section>", 1)[0]
    assert f'href="/experiences/{hero.key}/"' in panel and "still-a-draft" not in panel
    leader = panel.split('data-testid="leader">', 1)[1].split("<", 1)[0]
    assert leader.startswith("bold leads · ") and leader.endswith("chance to be best")

    data_manager = signed_in(account, "data_manager", name="dora").get("/dashboard/")
    assert 'data-testid="dashboard-experiences"' not in data_manager.content.decode()
