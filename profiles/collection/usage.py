"""Account usage: events received per day and month, and the optional monthly quota.

Counts come from StreamHourlyCount, which the stream aggregator keeps up to date from the raw
store (a few seconds behind), so checking the quota costs no write on the collection path.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from django.db.models import Sum
from django.db.models.functions import TruncDay

from cdp_site.models import Account
from profiles.models import AccountNotice, StreamHourlyCount

CACHE_SECONDS = 10.0
_cache: dict[int, tuple[float, int]] = {}


def month_start(now: datetime) -> datetime:
    return now.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def next_month_start(now: datetime) -> datetime:
    start = month_start(now)
    return start.replace(year=start.year + (start.month == 12), month=start.month % 12 + 1)


def events_this_month(account: Account, now: datetime) -> int:
    total = StreamHourlyCount.objects.for_account(account).filter(
        hour__gte=month_start(now)
    ).aggregate(total=Sum("events"))["total"]
    return int(total or 0)


def quota_exceeded(account: Account, now: datetime) -> int | None:
    """Seconds until the quota resets when the account is over it, else None."""
    if not account.monthly_event_quota:
        return None
    cached = _cache.get(account.pk)
    clock = time.monotonic()
    if cached is None or clock - cached[0] > CACHE_SECONDS:
        cached = (clock, events_this_month(account, now))
        _cache[account.pk] = cached
    if cached[1] < account.monthly_event_quota:
        return None
    return max(1, int((next_month_start(now) - now).total_seconds()))


def notify_quota_reached(account: Account, now: datetime) -> None:
    """Tell the account's Admins once per month that collection is refusing events."""
    kind = f"quota_reached:{month_start(now):%Y-%m}"
    if not AccountNotice.objects.for_account(account).filter(kind=kind).exists():
        AccountNotice.objects.create(
            account=account, kind=kind,
            message=f"The monthly quota of {account.monthly_event_quota:,} events is used up; "
                    "new events are refused with 429 until the month ends or the quota grows.",
        )


# The usage report Admins see.

MAX_MONTHS = 24


@dataclass
class UsageReport:
    quota: int | None
    month_start: datetime
    resets_at: datetime
    events_this_month: int
    months: list[tuple[str, int]]  # ("2026-11", events), oldest first, zero-filled
    days: list[tuple[date, int]]  # per UTC day, oldest first, zero-filled
    streams: list[tuple[str, int]]  # this month, most events first
    notices: list[Any] = field(default_factory=list)  # unresolved AccountNotices, newest first

    @property
    def percent_used(self) -> float | None:
        if not self.quota:
            return None
        return round(100 * self.events_this_month / self.quota, 2)


def _months_back(now: datetime, months: int) -> datetime:
    start = month_start(now)
    for _ in range(months - 1):
        start = month_start(start - timedelta(days=1))
    return start


def usage_report(account: Account, *, months: int = 3, now: datetime | None = None
                 ) -> UsageReport:
    """Events received per UTC day and calendar month over the last ``months`` months (the
    current one included), this month per stream, and the quota. Months are UTC months, as the
    quota's are."""
    now = now or datetime.now(UTC)
    months = max(1, min(months, MAX_MONTHS))
    first = _months_back(now, months)
    counts = StreamHourlyCount.objects.for_account(account).filter(hour__gte=first)
    per_day = dict(
        counts.annotate(day=TruncDay("hour", tzinfo=UTC)).order_by().values("day")
        .annotate(n=Sum("events")).values_list("day", "n")
    )
    days: list[tuple[date, int]] = []
    day = first
    while day <= now:
        days.append((day.date(), int(per_day.get(day, 0))))
        day += timedelta(days=1)
    per_month: dict[str, int] = {}
    start = first
    while start <= now:
        per_month[f"{start:%Y-%m}"] = 0
        start = next_month_start(start)
    for day_date, events in days:
        per_month[f"{day_date:%Y-%m}"] += events
    this_month = month_start(now)
    streams = (counts.filter(hour__gte=this_month).order_by().values("stream")
               .annotate(n=Sum("events")).values_list("stream", "n"))
    used = per_month[f"{this_month:%Y-%m}"]
    notices = AccountNotice.objects.for_account(account).filter(resolved_at__isnull=True)
    return UsageReport(
        quota=account.monthly_event_quota,
        month_start=this_month,
        resets_at=next_month_start(now),
        events_this_month=used,
        months=list(per_month.items()),
        days=days,
        streams=sorted(((s, int(n)) for s, n in streams), key=lambda item: (-item[1], item[0])),
        notices=[n for n in notices.order_by("-created_at", "-id")[:20]
                 if still_true(n, account.monthly_event_quota, used, this_month)],
    )


def still_true(notice: Any, quota: int | None, used: int, this_month: datetime) -> bool:
    """A "quota reached" notice holds only for its month, while a quota is set and used up:
    the page must not say "quota reached" beside "no limit" once an Admin lifts it."""
    if not notice.kind.startswith("quota_reached:"):
        return True
    return (notice.kind == f"quota_reached:{this_month:%Y-%m}" and bool(quota)
            and used >= int(quota or 0))


def resolve_notice(notice: Any, now: datetime | None = None) -> Any:
    """Mark a notice as seen and dealt with (it leaves the usage page)."""
    if notice.resolved_at is None:
        notice.resolved_at = now or datetime.now(UTC)
        notice.save(update_fields=["resolved_at"])
    return notice
