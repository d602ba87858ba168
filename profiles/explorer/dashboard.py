"""What the dashboard (``/dashboard/``, every role) shows of an account: the last 24 hours of
collection, the profiles, and processing (lag, pending events, throughput per minute over the
last hour, the worker's heartbeat). ``api_figures`` is the same for ``GET /api/v1/dashboard/``,
named in ``settings.STRATA_DASHBOARD_HOOKS`` (cdp_site does not import profiles).

Like the explorer, it reads the aggregator's tables (``StreamHourlyCount``), the processing
stats and indexed slices, never whole raw tables.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.db.models import Sum
from django.utils import timezone

from cdp_site.health import PROCESSOR_HEARTBEAT, serve_status, worker_status
from profiles.models import FailedEvent, ProcessingStat, Profile, Stream, StreamHourlyCount
from profiles.processing.pipeline import ProcessingStatus, processing_status

if TYPE_CHECKING:
    from cdp_site.models import Account

LAG_WARNING_SECONDS = 60  # past this, the lag shows in the warning colour
THROUGHPUT_MINUTES = 60


@dataclass(frozen=True)
class Dashboard:
    streams: int
    events_24h: int
    failed_24h: int
    profiles: int
    processing: ProcessingStatus
    lag_warning: bool
    events_per_minute_hour: float  # average over the last ``THROUGHPUT_MINUTES`` minutes
    events_last_hour: int
    throughput: list[tuple[datetime, int]]  # (minute, events processed), oldest first
    worker: dict[str, Any]
    processor: dict[str, Any] = field(default_factory=dict)  # the event processor's heartbeat
    processes: dict[str, Any] = field(default_factory=dict)  # manage.py serve's children
    # The same two windows for both measures (issue 15: "1,806 events in 24 h" beside "12,290
    # processed in the last hour" read as a contradiction; demo and imported events arrive
    # with older timestamps, so what was received in a window and what was processed in it
    # differ). Received counts are hourly: "since" is where the counted hours start.
    processed_24h: int = 0
    received_since: datetime | None = None  # the start of the 24 h window's first hour
    received_last_hour: int = 0
    received_last_hour_since: datetime | None = None


def human_duration(seconds: float) -> str:
    """``0 s``, ``42 s``, ``3 min 5 s``, ``2 h 10 min``, ``3 d 4 h``."""
    total = max(0, round(seconds))
    if total < 60:
        return f"{total} s"
    minutes, secs = divmod(total, 60)
    if minutes < 60:
        return f"{minutes} min {secs} s" if secs else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"


def throughput_series(account: Account, now: datetime | None = None,
                      minutes: int = THROUGHPUT_MINUTES) -> list[tuple[datetime, int]]:
    """Events processed in each of the last ``minutes`` whole minutes (the current one
    included), oldest first; minutes without a ``ProcessingStat`` row count 0."""
    last = (now or timezone.now()).astimezone(UTC).replace(second=0, microsecond=0)
    first = last - timedelta(minutes=minutes - 1)
    counts = dict(ProcessingStat.objects.for_account(account)
                  .filter(minute__gte=first, minute__lte=last).values_list("minute", "events"))
    return [(m, int(counts.get(m, 0)))
            for m in (first + timedelta(minutes=i) for i in range(minutes))]


def dashboard(account: Account, now: datetime | None = None) -> Dashboard:
    now = now or timezone.now()
    since = now - timedelta(hours=24)
    hour = since.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    hourly = StreamHourlyCount.objects.for_account(account)
    events = hourly.filter(hour__gte=hour).aggregate(n=Sum("events"))["n"] or 0
    recent = (now - timedelta(hours=1)).astimezone(UTC).replace(minute=0, second=0,
                                                                microsecond=0)
    received_recently = hourly.filter(hour__gte=recent).aggregate(n=Sum("events"))["n"] or 0
    processed = (ProcessingStat.objects.for_account(account)
                 .filter(minute__gt=now - timedelta(hours=24)).aggregate(n=Sum("events"))["n"])
    status = processing_status(account, now=now)
    series = throughput_series(account, now)
    last_hour = sum(n for _m, n in series)
    return Dashboard(
        streams=Stream.objects.for_account(account).count(),
        events_24h=int(events),
        failed_24h=FailedEvent.objects.for_account(account).filter(received_at__gte=since)
        .count(),
        profiles=Profile.objects.for_account(account).filter(merged_into__isnull=True).count(),
        processing=status,
        lag_warning=status.lag_seconds > LAG_WARNING_SECONDS,
        events_per_minute_hour=last_hour / THROUGHPUT_MINUTES,
        events_last_hour=last_hour,
        throughput=series,
        worker=worker_status(),
        processor=worker_status(PROCESSOR_HEARTBEAT),
        processes=(serve_status() or {}).get("children", {}),
        processed_24h=int(processed or 0),
        received_since=hour,
        received_last_hour=int(received_recently),
        received_last_hour_since=recent,
    )


def api_figures(account: Account) -> dict[str, Any]:
    """The dashboard API's processing and data figures (a ``STRATA_DASHBOARD_HOOKS`` entry)."""
    board = dashboard(account)
    status = board.processing
    return {
        "streams": board.streams,
        "events_24h": board.events_24h,
        "failed_events_24h": board.failed_24h,
        "profiles": board.profiles,
        "processing": {
            "pending": status.pending,
            "oldest_pending_at": status.oldest_pending_at.isoformat()
            if status.oldest_pending_at else None,
            "lag_seconds": round(status.lag_seconds, 1),
            "lag_warning": board.lag_warning,
            "events_last_minute": status.events_last_minute,
            "events_per_minute": round(board.events_per_minute_hour, 1),
            "events_last_hour": board.events_last_hour,
            "failed_last_hour": status.failed_last_hour,
            "throughput": [{"minute": m.isoformat(), "events": n} for m, n in board.throughput],
            "worker": board.worker,
        },
    }
