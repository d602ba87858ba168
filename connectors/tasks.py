"""django-q2 entry points of the connectors: thin, ids in, a service called. Task arguments
are ids only (they are signed, not encrypted): never a secret, never PII."""

from __future__ import annotations

from django.utils import timezone

from connectors import jobs, runner


def run_job(job_id: int) -> str:
    run = runner.run_job(job_id)
    return "skipped" if run is None else run.outcome


def enqueue_due_jobs() -> int:
    """Every minute: each due job (and each job a dead worker left) gets a task."""
    due = runner.due_jobs(timezone.now())
    for job_id in due:
        jobs.enqueue(job_id)
    return len(due)
