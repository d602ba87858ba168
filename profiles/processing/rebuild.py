"""Recompute an account's profiles from the raw store (after publishing a schema), and send
failed events back to processing.

A rebuild pauses the account's processing (its claim lock, then the end of every batch in
flight), deletes the account's profiles with what hangs off them, and queues every raw event
of the account again, in one transaction. The workers then process them in receive order with
the live schema, as they process anything else; events collected meanwhile queue behind them.
Progress is how many of the queued events are still pending (``rebuild_status``).
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.db import connection, models, transaction
from django.utils import timezone

from cdp_site import audit
from cdp_site.models import AuditEvent
from profiles.models import EventWarning, FailedEvent, PendingEvent, Profile, ProfileRebuild
from profiles.processing.pipeline import claim_lock_key, in_flight_tickets
from profiles.schema.versions import live_version

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

    from cdp_site.models import Account
    from cdp_site.tenancy import Actor

__all__ = ["RebuildStatus", "account_paused", "rebuild_status", "retry_failed_events",
           "start_rebuild"]


@contextmanager
def account_paused(account_id: int) -> Iterator[None]:
    """A transaction during which no batch of the account is in flight or can start."""
    key = claim_lock_key(account_id)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_lock(%s)", [key])
    try:
        with transaction.atomic():
            with connection.cursor() as cursor:
                tickets = in_flight_tickets(cursor, account_id)
                if tickets:
                    cursor.execute("SELECT count(pg_advisory_xact_lock_shared(k)) "
                                   "FROM unnest(%s::bigint[]) k", [tickets])
            yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s)", [key])


def _clear_profiles(account_id: int) -> None:
    """Every row referencing the account's profiles (this app's and downstream apps'), then the
    profiles: each relation by its on_delete, set-based (never one object at a time)."""
    for rel in Profile._meta.related_objects:
        if not isinstance(rel, models.ManyToOneRel):
            continue
        related = rel.related_model._base_manager.filter(
            **{f"{rel.field.name}__account_id": account_id})
        if rel.on_delete is models.CASCADE:
            related._raw_delete(related.db)
        elif rel.on_delete is models.SET_NULL:
            related.update(**{rel.field.name: None})
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM profiles_profile WHERE account_id = %s", [account_id])


_REQUEUE_ALL = """
INSERT INTO profiles_pendingevent (raw_event_id, account_id, received_at)
SELECT id, account_id, received_at FROM profiles_rawevent
WHERE account_id = %s AND id <= %s
ON CONFLICT (raw_event_id) DO NOTHING
"""


def start_rebuild(account: Account, *, user: Any = None, actor: Actor | None = None
                  ) -> ProfileRebuild:
    """Delete the account's profiles and queue all its raw events again (see the module
    docstring). Returns the rebuild, whose progress ``rebuild_status`` reports. With an
    ``actor`` (its user is the requester) the audit log gets ``schema.rebuild_started``."""
    if user is None and actor is not None:
        user = actor.user
    with account_paused(account.pk):
        with connection.cursor() as cursor:
            cursor.execute("SELECT coalesce(max(id), 0) FROM profiles_rawevent "
                           "WHERE account_id = %s", [account.pk])
            last_id = cursor.fetchone()[0]
        _clear_profiles(account.pk)
        EventWarning.objects.filter(account=account)._raw_delete(EventWarning.objects.db)
        FailedEvent.objects.filter(account=account, stage="process").delete()
        with connection.cursor() as cursor:
            cursor.execute(_REQUEUE_ALL, [account.pk, last_id])
        total = PendingEvent.objects.filter(account=account, raw_event_id__lte=last_id).count()
        started = ProfileRebuild.objects.create(
            account=account, schema_version=live_version(account),
            requested_by=user if getattr(user, "pk", None) else None,
            last_raw_event_id=last_id, events_total=total)
        if actor is not None:
            audit.record(account, actor, AuditEvent.Action.SCHEMA_REBUILD_STARTED, started,
                         changes={"schema_version": getattr(started.schema_version, "number",
                                                            None),
                                  "events_total": total})
        return started


@dataclass
class RebuildStatus:
    rebuild: ProfileRebuild
    remaining: int

    @property
    def done(self) -> int:
        return self.rebuild.events_total - self.remaining

    @property
    def progress(self) -> float:
        total = self.rebuild.events_total
        return 1.0 if not total else self.done / total

    @property
    def finished(self) -> bool:
        return self.rebuild.finished_at is not None

    def as_dict(self) -> dict[str, Any]:
        return {"started_at": self.rebuild.started_at, "finished_at": self.rebuild.finished_at,
                "events_total": self.rebuild.events_total, "events_done": self.done,
                "progress": round(self.progress, 4),
                "schema_version": getattr(self.rebuild.schema_version, "number", None)}


def rebuild_status(account: Account) -> RebuildStatus | None:
    """The latest rebuild and how far it is (marked finished once nothing it queued is
    pending)."""
    rebuild = ProfileRebuild.objects.for_account(account).select_related("schema_version"
                                                                         ).first()
    if rebuild is None:
        return None
    remaining = 0
    if rebuild.finished_at is None:
        remaining = PendingEvent.objects.filter(
            account=account, raw_event_id__lte=rebuild.last_raw_event_id).count()
        if remaining == 0:
            rebuild.finished_at = timezone.now()
            rebuild.save(update_fields=["finished_at"])
    return RebuildStatus(rebuild, remaining)


_REQUEUE = """
INSERT INTO profiles_pendingevent (raw_event_id, account_id, received_at)
SELECT r.id, r.account_id, r.received_at FROM profiles_rawevent r
WHERE r.account_id = %s AND r.id = ANY(%s::bigint[])
    AND r.received_at >= %s AND r.received_at <= %s
ON CONFLICT (raw_event_id) DO NOTHING
"""


def retry_failed_events(account: Account, failed_ids: Iterable[int] | None = None) -> int:
    """Queue the raw events of failed events (stage ``process``) again, after a schema fix;
    their failed events are removed (a new failure records a new one). All of the account's
    when ``failed_ids`` is None. Returns how many events were queued."""
    failures = FailedEvent.objects.for_account(account).filter(stage="process",
                                                               raw_event_id__isnull=False)
    if failed_ids is not None:
        failures = failures.filter(pk__in=list(failed_ids))
    rows = list(failures.values_list("pk", "raw_event_id", "received_at"))
    if not rows:
        return 0
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(_REQUEUE, [account.pk, [r[1] for r in rows],
                                      min(r[2] for r in rows), max(r[2] for r in rows)])
            queued = cursor.rowcount
        FailedEvent.objects.filter(pk__in=[r[0] for r in rows]).delete()
    return queued
