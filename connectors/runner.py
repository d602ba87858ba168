"""Running a job: claim it, step its kind batch by batch from the stored cursor, save the
cursor (and the kind's own state) after each delivered batch, and end in the right state.

Resuming: a worker killed mid-run leaves the job ``running`` with an old heartbeat; the next
claim (a scheduler tick, run now) takes it over once the heartbeat is older than
``STRATA_CONNECTOR_STALE_AFTER`` and resumes from the cursor of the last saved batch. A batch
delivered but not yet saved is delivered again with the same ``webhook-id`` (receivers
deduplicate on it), so nothing is lost and nothing counts twice.

Errors: a transient error puts the job to sleep with exponential backoff (or the
``Retry-After`` it was given); errors on every attempt for ``STRATA_CONNECTOR_FAIL_AFTER``
(10 hours) fail it, as does any permanent error, until a user resumes it."""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Callable
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from connectors import alerts
from connectors.authorizations import secret_of
from connectors.delivery import close_session
from connectors.errors import ConnectorError, PermanentError, TransientError
from connectors.jobs import log, next_run
from connectors.models import Job, JobLogEntry, JobRun
from connectors.registry import Kind, RunContext, get_kind

Clock = Callable[[], datetime]
logger = logging.getLogger(__name__)


def stale_after() -> timedelta:
    return timedelta(seconds=getattr(settings, "STRATA_CONNECTOR_STALE_AFTER", 120))


def fail_after() -> timedelta:
    return timedelta(hours=getattr(settings, "STRATA_CONNECTOR_FAIL_AFTER_HOURS", 10))


def backoff(errors: int, retry_after: float | None) -> float:
    """Seconds to sleep after ``errors`` consecutive errors: 30 s doubling to an hour, with
    jitter; never less than the endpoint's ``Retry-After``."""
    base = min(30.0 * 2 ** max(errors - 1, 0), 3600.0)
    delay = base * random.uniform(0.8, 1.2)
    return max(delay, retry_after or 0.0)


def _claim(job_id: int, now: datetime) -> Job | None:
    with transaction.atomic():
        job = Job.objects.select_for_update(skip_locked=True).filter(pk=job_id).first()
        if job is None or job.state in (Job.State.PAUSED, Job.State.FAILED,
                                        Job.State.COMPLETED):
            return None
        if (job.state == Job.State.RUNNING and job.heartbeat_at is not None
                and job.heartbeat_at > now - stale_after()):
            return None  # another worker has it
        resumed = job.state == Job.State.RUNNING
        job.state = Job.State.RUNNING
        job.heartbeat_at = now
        job.last_run_at = now
        job.save(update_fields=["state", "heartbeat_at", "last_run_at"])
        run = JobRun.objects.create(account_id=job.account_id, job=job, started_at=now)
        job._run = run  # type: ignore[attr-defined]
        log(job, JobLogEntry.Kind.STARTED,
            "resumed from the saved cursor after an interrupted run" if resumed else "",
            run_id=run.pk, at=now)
        return job


def run_job(job_id: int, *, now: Clock = timezone.now, sleep: Callable[[float], None] = time.sleep,
            max_steps: int | None = None, monotonic: Callable[[], float] = time.monotonic
            ) -> JobRun | None:
    """One run of a job (None when it is not due to run: paused, failed, taken)."""
    job = _claim(job_id, now())
    if job is None:
        return None
    run: JobRun = job._run  # type: ignore[attr-defined]
    try:
        kind = get_kind(job.kind)
        if kind.authorization_kind is not None and job.authorization_id is None:
            raise PermanentError("the job's authorization was deleted; choose another one",
                                 code="authorization_missing")
        secret = secret_of(job.authorization) if job.authorization is not None else {}
        job.config = kind.validate(job)
        ctx = RunContext(job=job, secret=secret, cursor=dict(job.cursor), now=now, sleep=sleep,
                         monotonic=monotonic)
        try:
            _steps(kind, ctx, job, run, now, max_steps)
        finally:
            close_session(ctx)
    except TransientError as exc:
        _errored(job, run, exc, now())
    except (PermanentError, ConnectorError) as exc:
        _failed(job, run, exc.message, now())
    except Exception as exc:  # a bug or the database: retried with backoff, never a secret
        logger.exception("connector job %s crashed", job.pk)
        _errored(job, run, TransientError(f"internal error ({type(exc).__name__})"), now())
    else:
        _finished(job, run, now())
    run.refresh_from_db()
    return run


# One statement per batch for the cursor, the heartbeat and the run's counts.
_SAVE_BATCH = """
WITH job AS (UPDATE connectors_job SET cursor = %(cursor)s::jsonb, heartbeat_at = %(now)s
             WHERE id = %(job)s)
UPDATE connectors_jobrun SET added = added + %(added)s, removed = removed + %(removed)s,
    omitted = omitted + %(omitted)s, errors = errors + %(errors)s
WHERE id = %(run)s
"""


def _steps(kind: Kind, ctx: RunContext, job: Job, run: JobRun, now: Clock,
           max_steps: int | None) -> None:
    """Batch after batch until the kind is done: each delivered batch's state, cursor and
    counts saved in one transaction."""
    steps = 0
    while True:
        result = kind.step(ctx)
        with transaction.atomic():
            if result.commit is not None:
                result.commit()
            with connection.cursor() as cur:
                cur.execute(_SAVE_BATCH, {
                    "cursor": json.dumps(result.cursor), "now": now(), "job": job.pk,
                    "run": run.pk, "added": result.added, "removed": result.removed,
                    "omitted": result.omitted, "errors": result.errors})
            for problem in result.problems[:20]:
                log(job, JobLogEntry.Kind.ERROR, problem, run_id=run.pk, at=now())
        ctx.cursor = dict(result.cursor)
        steps += 1
        if result.done or (max_steps is not None and steps >= max_steps):
            return


def _counts(run: JobRun) -> dict[str, int]:
    run.refresh_from_db()
    return {"added": run.added, "removed": run.removed, "omitted": run.omitted,
            "errors": run.errors}


def _finished(job: Job, run: JobRun, at: datetime) -> None:
    with transaction.atomic():
        following = next_run(job, at)
        state = Job.State.COMPLETED if following is None else Job.State.SLEEPING
        Job.objects.filter(pk=job.pk).update(
            state=state, next_run_at=following, consecutive_errors=0, erroring_since=None,
            last_error="", heartbeat_at=None)
        JobRun.objects.filter(pk=run.pk).update(finished_at=at, outcome="synced")
        counts = _counts(run)
        log(job, JobLogEntry.Kind.SYNCED, "", counts, run.pk, at)
        if state == Job.State.COMPLETED:
            log(job, JobLogEntry.Kind.COMPLETED, "", counts, run.pk, at)
        else:
            log(job, JobLogEntry.Kind.SLEEPING, f"next run at {following:%Y-%m-%d %H:%M:%S}",
                run_id=run.pk, at=at)


def _errored(job: Job, run: JobRun, exc: TransientError, at: datetime) -> None:
    fresh = Job.objects.get(pk=job.pk)
    since = fresh.erroring_since or at
    errors = fresh.consecutive_errors + 1
    if at - since >= fail_after():
        _failed(job, run, f"{exc.message} (errors on every attempt since "
                          f"{since:%Y-%m-%d %H:%M})", at, errors=errors)
        return
    delay = backoff(errors, exc.retry_after)
    wake = at + timedelta(seconds=delay)
    with transaction.atomic():
        Job.objects.filter(pk=job.pk).update(
            state=Job.State.SLEEPING, next_run_at=wake, consecutive_errors=errors,
            erroring_since=since, last_error=exc.message, heartbeat_at=None)
        JobRun.objects.filter(pk=run.pk).update(finished_at=at, outcome="error",
                                                errors=F("errors") + 1)
        log(job, JobLogEntry.Kind.ERROR, exc.message, _counts(run), run.pk, at)
        log(job, JobLogEntry.Kind.SLEEPING, f"backing off {delay:.0f} s, until "
                                            f"{wake:%Y-%m-%d %H:%M:%S}", run_id=run.pk, at=at)
    if errors == alerts.ERRORS_IN_A_ROW:
        alerts.job_alert(job, f"{errors} errors in a row: {exc.message}")


def _failed(job: Job, run: JobRun, message: str, at: datetime, errors: int | None = None
            ) -> None:
    with transaction.atomic():
        Job.objects.filter(pk=job.pk).update(
            state=Job.State.FAILED, next_run_at=None, last_error=message, heartbeat_at=None,
            consecutive_errors=errors if errors is not None else F("consecutive_errors") + 1)
        JobRun.objects.filter(pk=run.pk).update(finished_at=at, outcome="failed",
                                                errors=F("errors") + 1)
        log(job, JobLogEntry.Kind.ERROR, message, _counts(run), run.pk, at)
        log(job, JobLogEntry.Kind.FAILED, "stopped until a user resumes it", run_id=run.pk,
            at=at)
    alerts.job_alert(job, f"failed: {message}")


def due_jobs(now: datetime) -> list[int]:
    """Jobs to run now: sleeping and due, or running with a stale heartbeat (a dead worker)."""
    return list(Job.objects.filter(
        Q(state=Job.State.SLEEPING, next_run_at__lte=now)
        | Q(state=Job.State.RUNNING, heartbeat_at__lt=now - stale_after())
    ).order_by("next_run_at").values_list("pk", flat=True)[:500])
