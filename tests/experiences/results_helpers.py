"""Builders for the results, bandit schedule and page tests: visitors who were assigned, saw a
variant and converted, as experiences.decide and experiences.tracking leave them (bulk rows,
so thousands of visitors cost one statement per table)."""

from __future__ import annotations

from datetime import datetime
from itertools import count
from typing import Any

from django.utils import timezone

from cdp_site.models import Account
from experiences import config
from experiences.models import Assignment, Conversion, Experience, Goal, Impression, Phase
from tests.experiences.tracking_fixtures import ab_test

_ids = count(1)


def visitors(exp: Experience, variant: str, *, seen: int, converted: int = 0,
             assigned_only: int = 0, phase: int | None = None, at: datetime | None = None,
             goal: Goal | None = None, repeat: int = 1, conversions_each: int = 1) -> list[str]:
    """``seen`` visitors assigned to ``variant`` who saw it (``repeat`` impressions each), the
    first ``converted`` of them reaching ``goal`` (the primary goal by default) with
    ``conversions_each`` events; plus ``assigned_only`` assigned visitors who never saw it."""
    at = at or timezone.now()
    phase = exp.phase if phase is None else phase
    target = exp.variants.get(key=variant)
    goal = goal or exp.experience_goals.get(primary=True).goal
    names = [f"{variant}-{next(_ids)}" for _ in range(seen + assigned_only)]
    common = {"account_id": exp.account_id, "experience": exp, "variant": target,
              "phase": phase}
    Assignment.objects.bulk_create([Assignment(**common, visitor=name, assigned_at=at)
                                    for name in names])
    Impression.objects.bulk_create([
        Impression(**common, visitor=name, first_at=at, last_at=at, count=repeat)
        for name in names[:seen]])
    Conversion.objects.bulk_create([
        Conversion(**common, goal=goal, visitor=name, first_at=at, last_at=at,
                   count=conversions_each)
        for name in names[:converted]])
    return names


def make_bandit(account: Account, start: datetime, key: str = "button", uid: str = "b",
                **fields: Any) -> Experience:
    """An active bandit (two arms) whose phase started at ``start``."""
    exp = ab_test(account, key=key, uid=uid)
    Experience.objects.filter(pk=exp.pk).update(distribution="bandit", **fields)
    Phase.objects.filter(experience=exp).update(started_at=start)
    config.invalidate()
    exp.refresh_from_db()
    return exp
