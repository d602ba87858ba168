"""The demo seed's calculated attributes: the issue's examples, filled by demo-shaped events."""

from __future__ import annotations

import pytest

from demo.seed import DEMO_CALCULATED_ATTRIBUTES, DEMO_STREAM, seed_demo_calculated_attributes
from profiles.calculated import attributes as calculated
from profiles.models import CalculatedAttribute
from profiles.schema.lytics import install_lytics_schema
from tests.profiles.calculated_helpers import DAY, now
from tests.profiles.processing import profile_with, run, send

pytestmark = pytest.mark.django_db


def test_the_demo_attributes_are_seeded_once_and_computed(account):
    install_lytics_schema(account)
    seed_demo_calculated_attributes(account)
    seed_demo_calculated_attributes(account)  # idempotent
    names = set(CalculatedAttribute.objects.filter(account=account).values_list("name",
                                                                                 flat=True))
    assert names == {a["name"] for a in DEMO_CALCULATED_ATTRIBUTES}
    who = {"anonymousId": "visitor-1", "userId": "u_1"}
    send(account, {"type": "page", **who, "properties": {"path": "/"}},
         {"type": "track", "event": "Trip Booked", **who,
          "properties": {"revenue": 420.5, "destination": "Lisbon"}},
         {"type": "track", "event": "Search Performed", **who,
          "properties": {"destination": "Porto"}},
         {"type": "track", "event": "Search Performed", **who,
          "properties": {"destination": "Porto"}}, stream=DEMO_STREAM, at=now() - DAY)
    run(account)
    pid = profile_with(account, "visitor-1").pk
    assert calculated.profile_attributes(account.pk, pid) == {
        "1_week_page_views": 1, "90_day_revenue": 420.5, "favourite_destination": "Porto"}
