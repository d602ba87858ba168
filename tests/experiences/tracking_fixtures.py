"""Builders for the tracking and Personalize tests: live experiences as the lifecycle leaves
them after activation (variants, a goal, phase 1), made with the ORM."""

from __future__ import annotations

from typing import Any

from cdp_site.models import Account
from experiences import config
from experiences.decide import decide
from experiences.models import Experience, ExperienceGoal, Goal, Phase, Variant


def ab_test(account: Account, key: str = "hero", uid: str = "a", *,
            variants: tuple[str, ...] = ("control", "bold"),
            goal_event: str = "booked", where: list[dict[str, Any]] | None = None,
            goal_stream: str = "", status: str = "active",
            type: str = "ab", audiences: dict[str, Any] | None = None) -> Experience:
    """An active A/B test (equal split) with a primary goal; ``audiences`` (variant key ->
    Audience) makes it a segmented experience."""
    exp = Experience.objects.create(account=account, key=key, uid=uid, name=key.title(),
                                    status=status, type=type, phase=1)
    for position, vkey in enumerate(variants):
        Variant.objects.create(account=account, experience=exp, key=vkey, uid=str(position),
                               value=vkey, content={"title": vkey.title()},
                               is_base=position == 0, position=position,
                               audience=(audiences or {}).get(vkey), priority=position)
    goal, _ = Goal.objects.get_or_create(
        account=account, key=f"{goal_event}-{key}",
        defaults={"name": goal_event, "event": goal_event, "where": where or [],
                  "stream": goal_stream})
    ExperienceGoal.objects.create(account=account, experience=exp, goal=goal, primary=True)
    Phase.objects.create(account=account, experience=exp, number=1,
                         weights={v: 1 / len(variants) for v in variants},
                         variant_keys=list(variants))
    config.invalidate(account.pk)
    return exp


def assigned(account: Account, visitor: str, key: str = "hero",
             identifiers: dict[str, Any] | None = None) -> tuple[str, str]:
    """Decide for the visitor (storing the assignment): (variant key, variant uid)."""
    [decision] = [d for d in decide(account.pk, visitor, identifiers=identifiers).decisions
                  if d.experience_key == key]
    assert decision.in_experiment, decision
    return decision.variant_key, decision.variant_uid


def visitor_with(account: Account, variant: str, prefix: str = "v", key: str = "hero") -> str:
    """A visitor id the split gives this variant (decided, so the assignment is stored)."""
    for n in range(200):
        visitor = f"{prefix}-{n}"
        experience = Experience.objects.get(account=account, key=key)
        if experience.assignments.filter(visitor=visitor).exists():
            continue
        got, _uid = assigned(account, visitor, key)
        if got == variant:
            return visitor
    raise AssertionError(f"no visitor got {variant}")


def other_variant(account: Account, key: str, variant: str) -> Variant:
    return Variant.objects.filter(experience__account=account, experience__key=key) \
        .exclude(key=variant).first()
