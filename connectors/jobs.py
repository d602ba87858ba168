"""Creating and steering jobs: configuration validated by the job's kind (refused with the
field path), schedules (an interval, a cron expression, or once), pause / resume / run now.
The runs themselves are ``connectors.runner``."""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from croniter import croniter
from django.db import transaction
from django.utils import timezone

from cdp_site.audit import record_change
from cdp_site.tenancy import actor_for_user
from connectors.authorizations import secret_of
from connectors.delivery import close_session
from connectors.errors import InvalidInput
from connectors.models import Authorization, Job, JobLogEntry
from connectors.registry import RunContext, get_kind
from profiles.masking import PII_PERMISSION

if TYPE_CHECKING:
    from cdp_site.models import Account
    from cdp_site.tenancy import Actor

MIN_INTERVAL_SECONDS = 10


def next_run(job: Job, now: datetime) -> datetime | None:
    if job.schedule == Job.Schedule.ONCE:
        return None
    if job.schedule == Job.Schedule.CRON:
        value: datetime = croniter(job.cron, now).get_next(datetime)
        return value
    return now + timedelta(seconds=job.interval_seconds)


def creator_sees_pii(job: Job) -> bool:
    """Whether the job's creator may see PII now (a member losing ``pii.view`` takes PII out
    of the exports they made)."""
    if job.created_by is None:
        return job.creator_sees_pii
    actor = actor_for_user(job.created_by, job.account, None)
    return actor is not None and actor.has(PII_PERMISSION)


def _check_schedule(job: Job) -> None:
    if job.schedule not in Job.Schedule.values:
        raise InvalidInput("schedule", f"one of {', '.join(Job.Schedule.values)}")
    if job.schedule == Job.Schedule.CRON and not croniter.is_valid(job.cron or ""):
        raise InvalidInput("cron", f"not a cron expression: {job.cron!r}")
    if job.schedule == Job.Schedule.INTERVAL and job.interval_seconds < MIN_INTERVAL_SECONDS:
        raise InvalidInput("interval_seconds", f"at least {MIN_INTERVAL_SECONDS}")


def _check_authorization(job: Job, authorization_id: int | None) -> None:
    wanted = get_kind(job.kind).authorization_kind
    if wanted is None:
        job.authorization = None
        return
    if authorization_id is None:
        raise InvalidInput("authorization", "is required", code="config_required")
    found = Authorization.objects.for_account(job.account).filter(pk=authorization_id).first()
    if found is None:
        raise InvalidInput("authorization", "no such authorization in this account")
    if found.kind != wanted:
        raise InvalidInput("authorization", f"a {job.kind} job needs a {wanted} authorization")
    job.authorization = found


@transaction.atomic
def create_job(account: Account, actor: Actor | None, *, name: str, kind: str,
               authorization_id: int | None, config: Any, schedule: str = "interval",
               interval_seconds: int = 300, cron: str = "",
               now: datetime | None = None) -> Job:
    if not (name or "").strip():
        raise InvalidInput("name", "is required")
    if not isinstance(config, dict):
        raise InvalidInput("config", "must be an object")
    job = Job(account=account, name=name.strip(), kind=kind, config=config, schedule=schedule,
              interval_seconds=interval_seconds, cron=cron,
              created_by=actor.user if actor and actor.user and actor.user.pk else None,
              creator_sees_pii=actor is None or actor.has(PII_PERMISSION))
    kind_impl = get_kind(kind)
    _check_authorization(job, authorization_id)
    job.config = kind_impl.validate(job)
    _check_schedule(job)
    job.next_run_at = now or timezone.now()
    job.save()
    record_change(actor, "job.create", job, {"name": job.name, "kind": kind,
                                             "config": job.config})
    return job


@transaction.atomic
def update_job(job: Job, actor: Actor | None, **changes: Any) -> Job:
    """Name, configuration, schedule or authorization; validated as on creation. A changed
    configuration starts over (a new full sync)."""
    allowed = {"name", "config", "schedule", "interval_seconds", "cron", "authorization_id"}
    unknown = set(changes) - allowed
    if unknown:
        raise InvalidInput(sorted(unknown)[0], "cannot be changed")
    for key, value in changes.items():
        if key != "authorization_id":
            setattr(job, key, value)
    if "authorization_id" in changes:
        _check_authorization(job, changes["authorization_id"])
    if not isinstance(job.config, dict):
        raise InvalidInput("config", "must be an object")
    job.config = get_kind(job.kind).validate(job)
    _check_schedule(job)
    if "config" in changes:
        job.cursor = {}
    job.updated_at = timezone.now()
    job.save()
    record_change(actor, "job.update", job, {k: v for k, v in changes.items()})
    return job


def log(job: Job, kind: str, message: str = "", counts: dict[str, int] | None = None,
        run_id: int | None = None, at: datetime | None = None) -> None:
    JobLogEntry.objects.create(account_id=job.account_id, job=job, run_id=run_id, kind=kind,
                               message=message, counts=counts or {}, at=at or timezone.now())


@transaction.atomic
def pause_job(job: Job, actor: Actor | None) -> Job:
    job = Job.objects.select_for_update().get(pk=job.pk)
    job.state = Job.State.PAUSED
    job.save(update_fields=["state"])
    log(job, JobLogEntry.Kind.PAUSED, f"paused by {actor.label if actor else 'system'}")
    record_change(actor, "job.pause", job)
    return job


@transaction.atomic
def resume_job(job: Job, actor: Actor | None, now: datetime | None = None) -> Job:
    """Back to sleeping and due now; a failed job's error streak starts over."""
    job = Job.objects.select_for_update().get(pk=job.pk)
    job.state = Job.State.SLEEPING
    job.next_run_at = now or timezone.now()
    job.consecutive_errors = 0
    job.erroring_since = None
    job.save(update_fields=["state", "next_run_at", "consecutive_errors", "erroring_since"])
    log(job, JobLogEntry.Kind.RESUMED, f"resumed by {actor.label if actor else 'system'}")
    record_change(actor, "job.resume", job)
    return job


def run_now(job: Job, actor: Actor | None) -> Job:
    """Due now, and a worker told at once (on commit)."""
    if job.state == Job.State.PAUSED or job.state == Job.State.FAILED:
        raise InvalidInput("state", f"the job is {job.state}; resume it first",
                           code="job_not_runnable")
    with transaction.atomic():
        Job.objects.filter(pk=job.pk).update(next_run_at=timezone.now())
        record_change(actor, "job.run_now", job)
        transaction.on_commit(lambda: enqueue(job.pk))
    job.refresh_from_db()
    return job


def enqueue(job_id: int) -> None:
    from django_q.tasks import async_task

    async_task("connectors.tasks.run_job", job_id, group="connectors")


@transaction.atomic
def delete_job(job: Job, actor: Actor | None) -> None:
    record_change(actor, "job.delete", job, {"name": job.name})
    job.delete()


def test_connection(account: Account, actor: Actor | None, *, kind: str,
                    authorization_id: int | None, config: Any) -> str:
    """One real call with a configuration not yet saved (the wizard's "test connection");
    a sentence saying how it went, or a ConnectorError / InvalidInput."""
    if not isinstance(config, dict):
        raise InvalidInput("config", "must be an object")
    job = Job(account=account, name="test", kind=kind, config=config,
              creator_sees_pii=actor is None or actor.has(PII_PERMISSION))
    kind_impl = get_kind(kind)
    _check_authorization(job, authorization_id)
    job.config = kind_impl.validate(job)
    secret = secret_of(job.authorization) if job.authorization is not None else {}
    ctx = RunContext(job=job, secret=secret, cursor={}, now=timezone.now, sleep=time.sleep)
    try:
        return kind_impl.test_connection(ctx)
    finally:
        close_session(ctx)


def audience_users(audience: Any) -> list[str]:
    """The jobs that export an audience: an ``STRATA_AUDIENCE_USERS_HOOKS`` entry, so audiences
    refuse to rename or delete an audience an export reads."""
    names = Job.objects.filter(account_id=audience.account_id,
                               config__audience=audience.slug).values_list("name", flat=True)
    return [f"job {name}" for name in sorted(names)]
