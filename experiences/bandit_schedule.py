"""Scheduled bandit reweighting (issue 6, part 3).

A django-q2 schedule runs ``reweight_due`` every 15 minutes (``experiences.tasks``). Each
active multi-armed bandit is reweighted only when

- its burn-in is over: ``bandit_burn_in_hours`` after its current phase started;
- its own interval has passed: ``bandit_interval_minutes`` (at least 15) since its last
  reweighting in this phase (with a minute of slack, so an hourly bandit is not pushed to the
  next 15-minute run by a few seconds of task latency);
- every arm has at least ``bandit.MIN_VISITORS`` (100) visitors who saw it: before that the
  split stays as it is, and no row is written.

Reweighting takes each arm's visitors who saw it and those who reached the primary goal in the
current phase (``experiences.results.phase_arms``: one GROUP BY per table), computes Thompson
sampling weights (``experiences.bandit.bandit_weights``, no arm below 1 %), stores them as a
``BanditWeights`` row (the history the page draws and the SRM check follows), bumps
``Experience.version`` and invalidates ``experiences.config`` so the decision paths use the new
split at once (other processes within the config TTL). New visitors are split by the new
weights; assigned visitors keep their variant.

The experience row is locked (``SELECT … FOR UPDATE SKIP LOCKED``) while it is reweighted, so
two workers never reweight the same bandit twice. Sampling is seeded from the experience's uid
and key, the phase and the time, so a run is repeatable (tests pass ``now``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from cdp_site import audit
from cdp_site.models import AuditEvent
from experiences import config
from experiences.bandit import MIN_VISITORS, bandit_weights
from experiences.lifecycle import ExperienceError
from experiences.models import BanditWeights, Experience, ExperienceGoal, Phase
from experiences.results import phase_arms

if TYPE_CHECKING:
    from cdp_site.tenancy import Actor

MIN_INTERVAL_MINUTES = 15
SLACK = timedelta(minutes=1)

REWEIGHTED = "reweighted"
BURN_IN = "burn_in"
NOT_DUE = "not_due"
TOO_FEW_VISITORS = "too_few_visitors"
NOT_RUNNING = "not_running"


@dataclass(frozen=True)
class Outcome:
    experience_id: int
    key: str
    reason: str
    weights: dict[str, float] = field(default_factory=dict)
    arms: dict[str, list[int]] = field(default_factory=dict)

    @property
    def reweighted(self) -> bool:
        return self.reason == REWEIGHTED


def interval(exp: Experience) -> timedelta:
    return timedelta(minutes=max(exp.bandit_interval_minutes or 0, MIN_INTERVAL_MINUTES))


def next_due(exp: Experience, phase: Phase, last: datetime | None) -> datetime:
    """When the bandit may be reweighted next: after the burn-in, then every interval."""
    burn_in_end = phase.started_at + timedelta(hours=exp.bandit_burn_in_hours or 0)
    if last is None:
        return burn_in_end
    return max(burn_in_end, last + interval(exp))


def schedule_status(exp: Experience, *, now: datetime | None = None) -> dict[str, Any]:
    """A bandit's schedule as the page and the API show it: its settings, its last
    reweighting in the current phase, when the next one is due (``None`` unless it is
    running), and how many reweightings the phase had."""
    now = now or timezone.now()
    phase = Phase.objects.filter(experience=exp, number=exp.phase).first() if exp.phase else None
    rows = (BanditWeights.objects.filter(experience=exp, phase=phase.number)
            if phase else BanditWeights.objects.none())
    last = rows.order_by("-at", "-id").first()
    running = phase is not None and exp.status == Experience.Status.ACTIVE
    due = next_due(exp, phase, last.at if last else None) if phase is not None else None
    return {
        "interval_minutes": int(interval(exp).total_seconds() // 60),
        "burn_in_hours": exp.bandit_burn_in_hours,
        "schedule_minutes": MIN_INTERVAL_MINUTES,
        "min_visitors_per_arm": MIN_VISITORS,
        "last_reweight_at": last.at.isoformat() if last else None,
        "last_weights": dict(last.weights) if last else None,
        "next_reweight_at": due.isoformat() if running and due else None,
        # the schedule runs every 15 minutes: a due bandit moves at its next run
        "next_reweight_waits_for_schedule": bool(running and due and due <= now),
        "reweights": rows.count(),
    }


def _bandits() -> list[int]:
    return list(Experience.objects.filter(
        status=Experience.Status.ACTIVE, type=Experience.Type.AB,
        distribution=Experience.Distribution.BANDIT, phase__gt=0,
    ).order_by("account_id", "id").values_list("id", flat=True))


def _seed(exp: Experience, now: datetime) -> int:
    text = f"{exp.uid}:{exp.key}:{exp.phase}:{now.isoformat()}".encode()
    return int.from_bytes(hashlib.sha256(text).digest()[:8], "big")


def _arm_counts(exp: Experience, phase: Phase) -> dict[str, list[int]]:
    """{variant key: [visitors who saw it, of them reached the primary goal]}."""
    primary = (ExperienceGoal.objects.filter(experience=exp, primary=True)
               .values_list("goal_id", flat=True).first())
    arms = phase_arms(exp, phase)
    counts = {}
    for arm in arms:
        users = arm.impression_visitors
        counts[arm.variant.key] = [users, min(arm.converted(primary)[0], users)]
    return counts


def _store(exp: Experience, phase: Phase, now: datetime, weights: dict[str, float],
           arms: dict[str, list[int]]) -> None:
    BanditWeights.objects.create(account_id=exp.account_id, experience=exp, phase=phase.number,
                                 at=now, weights=weights, arms=arms)
    Experience.objects.filter(pk=exp.pk).update(version=F("version") + 1, updated_at=now)
    account_id = exp.account_id
    config.invalidate(account_id)
    transaction.on_commit(lambda: config.invalidate(account_id))


def reweight(experience_id: int, *, now: datetime | None = None, force: bool = False
             ) -> Outcome:
    """Reweight one bandit if it is due (``force`` skips the burn-in and interval, never the
    minimum of visitors per arm)."""
    now = now or timezone.now()
    with transaction.atomic():
        exp = (Experience.objects.select_for_update(skip_locked=True)
               .filter(pk=experience_id, status=Experience.Status.ACTIVE,
                       distribution=Experience.Distribution.BANDIT, phase__gt=0).first())
        if exp is None:
            return Outcome(experience_id, "", NOT_RUNNING)
        phase = Phase.objects.get(experience=exp, number=exp.phase)
        last = (BanditWeights.objects.filter(experience=exp, phase=phase.number)
                .order_by("-at", "-id").values_list("at", flat=True).first())
        due = next_due(exp, phase, last)
        if not force and now + SLACK < due:
            return Outcome(exp.pk, exp.key, BURN_IN if last is None else NOT_DUE)
        arms = _arm_counts(exp, phase)
        if len(arms) < 2 or any(users < MIN_VISITORS for users, _c in arms.values()):
            return Outcome(exp.pk, exp.key, TOO_FEW_VISITORS, arms=arms)
        keys = list(arms)
        shares = bandit_weights([(arms[key][0], arms[key][1]) for key in keys],
                                seed=_seed(exp, now))
        weights = dict(zip(keys, shares, strict=True))
        _store(exp, phase, now, weights, arms)
        return Outcome(exp.pk, exp.key, REWEIGHTED, weights=weights, arms=arms)


def reweight_due(*, now: datetime | None = None) -> list[Outcome]:
    """The schedule: every active bandit, each reweighted if it is due."""
    now = now or timezone.now()
    return [reweight(pk, now=now) for pk in _bandits()]


REFUSALS = {
    NOT_RUNNING: "Only an active bandit is reweighted (or another reweighting is running).",
    TOO_FEW_VISITORS: "Not yet: every variant needs {minimum} visitors who saw it before the "
                      "bandit reweights ({counts}).",
}


def reweight_now(exp: Experience, actor: Actor | None, *,
                 now: datetime | None = None) -> Outcome:
    """Reweight a bandit at once, whatever its burn-in and interval ("reweight now"), or
    refuse with the reason (``ExperienceError``: ``not_a_bandit``, ``not_running``,
    ``too_few_visitors``, 409); nothing is written when refused."""
    if exp.distribution != Experience.Distribution.BANDIT:
        raise ExperienceError("not_a_bandit", "Only a multi-armed bandit has weights to "
                              "recompute.", status=409)
    with transaction.atomic():
        outcome = reweight(exp.pk, now=now, force=True)
        if not outcome.reweighted:
            counts = ", ".join(f"{key} {users}" for key, (users, _c) in outcome.arms.items())
            raise ExperienceError(outcome.reason, REFUSALS[outcome.reason].format(
                minimum=MIN_VISITORS, counts=counts or "no variant seen"), status=409)
        audit.record_change(actor, AuditEvent.Action.EXPERIENCE_UPDATED, exp,
                            {"bandit_weights": [None, outcome.weights]})
    return outcome
