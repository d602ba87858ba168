"""django-q2 entry points of the audiences app: thin, they call audiences.membership."""

from __future__ import annotations

from audiences import membership


def compute_audience(audience_id: int) -> int:
    """Compute a new or edited audience (and those including it); returns the size."""
    results = membership.compute_audience(audience_id)
    return next((r.size for r in results if r.audience_id == audience_id), 0)


def recompute_time_relative() -> int:
    """Every 15 minutes: audiences whose result changes with time alone; how many ran."""
    return len(membership.recompute_time_relative())


def record_sizes() -> int:
    """Hourly: a size point for every audience."""
    return membership.record_sizes()
