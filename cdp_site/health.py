"""/health/: is the database answering, and is the worker alive (its heartbeat's age)."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache

from cdp_site.models import WorkerHeartbeat

HEARTBEAT_NAME = "qcluster"


def beat(name: str = HEARTBEAT_NAME) -> None:
    """Called by the worker on a schedule (cdp_site.tasks.heartbeat)."""
    WorkerHeartbeat.objects.update_or_create(name=name, defaults={"beat_at": timezone.now()})


def worker_status() -> dict[str, object]:
    heartbeat = WorkerHeartbeat.objects.filter(name=HEARTBEAT_NAME).first()
    if heartbeat is None:
        return {"status": "unknown", "last_heartbeat": None}
    age = timezone.now() - heartbeat.beat_at
    stale = age > timedelta(seconds=settings.STRATA_WORKER_STALE_AFTER)
    return {
        "status": "stale" if stale else "ok",
        "last_heartbeat": heartbeat.beat_at.isoformat(),
        "age_seconds": round(age.total_seconds(), 1),
    }


@never_cache
def health(request: HttpRequest) -> JsonResponse:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
        database = {"status": "ok"}
        worker = worker_status()
    except Exception as exc:  # the point of a health check is to report, not to raise
        return JsonResponse(
            {"status": "error", "database": {"status": "error", "error": type(exc).__name__},
             "worker": {"status": "unknown"}},
            status=503,
        )
    overall = "ok" if worker["status"] == "ok" else "degraded"
    return JsonResponse({"status": overall, "database": database, "worker": worker})
