"""Builders for the lifecycle, API and admin tests: experiences made through
experiences.lifecycle, as the API and the seed make them."""

from __future__ import annotations

from typing import Any

from audiences.models import Audience
from cdp_site.models import Account
from experiences import lifecycle
from experiences.models import Experience, Goal


def goal(account: Account, key: str = "booked", event: str = "booked", **values: Any) -> Goal:
    found = Goal.objects.filter(account=account, key=key).first()
    return found or lifecycle.create_goal(account, key=key, name=key.title(), event=event,
                                          **values)


def audience(account: Account, slug: str, *, api_accessible: bool = True) -> Audience:
    return Audience.objects.create(account=account, slug=slug, name=slug.title(),
                                   api_accessible=api_accessible,
                                   rule={"field": "taxonomy", "op": "=", "value": slug})


def ab_test(account: Account, key: str = "hero-banner", **changes: Any) -> Experience:
    """A draft A/B test that can be activated: control and bold, equal split, a goal."""
    goal(account)
    spec: dict[str, Any] = {
        "name": "Hero banner",
        "variants": [{"key": "control", "value": "Book now", "base": True},
                     {"key": "bold", "value": "Book today!"}],
        "goals": [{"goal": "booked", "primary": True}],
        **changes,
    }
    return lifecycle.create_experience(account, key=key, **spec)


def segmented(account: Account, key: str = "cuisine-banner", **changes: Any) -> Experience:
    """A draft segmented experience: the cuisine banner for the ``cuisine`` audience."""
    if not Audience.objects.filter(account=account, slug="cuisine").exists():
        audience(account, "cuisine")
    spec: dict[str, Any] = {
        "name": "Cuisine banner", "type": "segmented",
        "variants": [{"key": "base", "value": "Travel deals", "base": True},
                     {"key": "cuisine", "value": "New Italian recipes", "audience": "cuisine",
                      "priority": 1}],
        **changes,
    }
    return lifecycle.create_experience(account, key=key, **spec)


def codes(error: lifecycle.ExperienceError) -> list[str]:
    return [p["code"] for p in error.problems]
