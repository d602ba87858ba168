"""Account usage: events received per day and month, and the optional monthly quota.

Counts come from StreamHourlyCount, which the stream aggregator keeps up to date from the raw
store (a few seconds behind), so checking the quota costs no write on the collection path.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

from django.db.models import Sum

from cdp_site.models import Account
from profiles.models import StreamHourlyCount

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
    from profiles.models import AccountNotice

    kind = f"quota_reached:{month_start(now):%Y-%m}"
    if not AccountNotice.objects.for_account(account).filter(kind=kind).exists():
        AccountNotice.objects.create(
            account=account, kind=kind,
            message=f"The monthly quota of {account.monthly_event_quota:,} events is used up; "
                    "new events are refused with 429 until the month ends or the quota grows.",
        )
