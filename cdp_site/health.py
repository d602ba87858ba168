"""/health/: is the database answering; are the django-q2 cluster and the event processor
alive (each one's own heartbeat's age); and, under ``manage.py serve``, the state of each of
its children (restarts included)."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache

from cdp_site.models import WorkerHeartbeat

HEARTBEAT_NAME = "qcluster"
PROCESSOR_HEARTBEAT = "processor"  # beaten by `manage.py process_events --loop`
SERVE_STATUS_FRESH = 30  # seconds: serve rewrites it twice a second; older, serve is gone


def beat(name: str = HEARTBEAT_NAME) -> None:
    """Called by the worker on a schedule (cdp_site.tasks.heartbeat)."""
    WorkerHeartbeat.objects.update_or_create(name=name, defaults={"beat_at": timezone.now()})


def worker_status(name: str = HEARTBEAT_NAME) -> dict[str, object]:
    heartbeat = WorkerHeartbeat.objects.filter(name=name).first()
    if heartbeat is None:
        return {"status": "unknown", "last_heartbeat": None}
    age = timezone.now() - heartbeat.beat_at
    stale = age > timedelta(seconds=settings.STRATA_WORKER_STALE_AFTER)
    return {
        "status": "stale" if stale else "ok",
        "last_heartbeat": heartbeat.beat_at.isoformat(),
        "age_seconds": round(age.total_seconds(), 1),
    }


def serve_status() -> dict[str, Any] | None:
    """The children of ``manage.py serve`` as it last wrote them, or None (not under serve)."""
    path = Path(settings.STRATA_SERVE_STATUS)
    try:
        fresh = time.time() - path.stat().st_mtime < SERVE_STATUS_FRESH
        state = json.loads(path.read_text()) if fresh else None
    except (OSError, ValueError):
        return None
    return state if isinstance(state, dict) and state.get("status") == "running" else None


@never_cache
def health(request: HttpRequest) -> JsonResponse:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
        database = {"status": "ok"}
        worker = worker_status()
        processor = worker_status(PROCESSOR_HEARTBEAT)
    except Exception as exc:  # the point of a health check is to report, not to raise
        return JsonResponse(
            {"status": "error", "database": {"status": "error", "error": type(exc).__name__},
             "worker": {"status": "unknown"}},
            status=503,
        )
    serve = serve_status()
    restarting = serve is not None and any(
        child.get("status") != "running" for child in serve.get("children", {}).values())
    overall = ("ok" if worker["status"] == "ok" and processor["status"] != "stale"
               and not restarting else "degraded")
    body: dict[str, Any] = {"status": overall, "database": database, "worker": worker,
                            "processor": processor}
    if serve is not None:
        body["processes"] = serve["children"]
    return JsonResponse(body)
