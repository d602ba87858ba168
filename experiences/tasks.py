"""django-q2 entry points of the experiences app: thin, they call the modules that do the work
(scheduled by migration 0002_results_schedules)."""

from __future__ import annotations

from experiences.bandit_schedule import reweight_due
from experiences.results import snapshot_running


def reweight_bandits() -> int:
    """Every 15 minutes: bandits whose interval and burn-in have passed get new weights;
    returns how many were reweighted."""
    return sum(1 for outcome in reweight_due() if outcome.reweighted)


def snapshot_results() -> int:
    """Hourly: a results snapshot of every running experience; returns how many."""
    return len(snapshot_running())
