"""Reads the explorer's pages need beyond ``profiles.explorer.streams`` and
``profiles.collection.usage``: the
per-stream figures of the streams list and the failed events list. Like those, they read the
aggregator's tables and indexed slices of the failed events, never whole raw tables."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.db.models import Count

from cdp_site.tenancy import accounts_for_user
from profiles.models import FailedEvent, RawKey, Stream, StreamHourlyCount

if TYPE_CHECKING:
    from cdp_site.models import Account

SPARK_HOURS = 24
FAILED_PAGE = 50
CODE_CHOICES_DAYS = 90


def _hour(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def hourly_sparklines(account: Account, now: datetime | None = None,
                      hours: int = SPARK_HOURS) -> dict[str, list[int]]:
    """Events per hour of each stream over the last ``hours`` hourly buckets (the current one
    included), oldest first: the streams list's sparklines."""
    last = _hour(now or datetime.now(UTC))
    first = last - timedelta(hours=hours - 1)
    lines: dict[str, list[int]] = {}
    rows = StreamHourlyCount.objects.for_account(account).filter(
        hour__gte=first, hour__lte=last
    ).values_list("stream", "hour", "events")
    for stream, hour, events in rows:
        index = int((hour - first).total_seconds() // 3600)
        lines.setdefault(stream, [0] * hours)[index] += events
    return lines


def other_accounts_with_streams(user: Any, current: Account) -> list[tuple[Account, int]]:
    """The user's other accounts that have streams, with how many: an empty account's page
    points to them (the account switcher is one click away)."""
    others = {a.pk: a for a in accounts_for_user(user) if a.pk != current.pk}
    if not others:
        return []
    counts = (Stream.objects.filter(account_id__in=list(others)).order_by()
              .values("account_id").annotate(n=Count("id")).values_list("account_id", "n"))
    return sorted(((others[pk], n) for pk, n in counts), key=lambda item: item[0].name)


def failed_counts(account: Account, since: datetime) -> dict[str, int]:
    """Failed events per stream received since ``since`` ("" for those refused before a stream
    was known)."""
    rows = (FailedEvent.objects.for_account(account).filter(received_at__gte=since)
            .order_by().values("stream").annotate(n=Count("id")).values_list("stream", "n"))
    return dict(rows)


def raw_key_counts(account: Account) -> dict[str, int]:
    """Visible raw keys per stream."""
    rows = (RawKey.objects.for_account(account).filter(hidden=False).order_by()
            .values("stream").annotate(n=Count("id")).values_list("stream", "n"))
    return dict(rows)


@dataclass
class FailedPage:
    events: list[FailedEvent]
    newer_than: int | None  # the first id of this page, for the "newer" link
    older_than: int | None  # the last id of this page, when older events exist
    total_since: int  # failed events matching the filters in the last 24 hours


def failed_events_page(
    account: Account,
    *,
    stream: str = "",
    code: str = "",
    before_id: int | None = None,
    after_id: int | None = None,
    limit: int = FAILED_PAGE,
    now: datetime | None = None,
) -> FailedPage:
    """One page of the account's failed events, newest first, by id (no OFFSET, no count of a
    table that may be huge): ``before_id`` pages to older ones, ``after_id`` back to newer."""
    events = FailedEvent.objects.for_account(account)
    if stream:
        events = events.filter(stream=stream)
    if code:
        events = events.filter(code=code)
    day_ago = (now or datetime.now(UTC)) - timedelta(hours=24)
    total_since = events.filter(received_at__gte=day_ago).count()
    page = events.defer("body")
    if after_id is not None:
        rows = list(page.filter(id__gt=after_id).order_by("id")[: limit + 1])
        newer = len(rows) > limit
        rows = rows[:limit][::-1]
        older = True
    else:
        if before_id is not None:
            page = page.filter(id__lt=before_id)
        rows = list(page.order_by("-id")[: limit + 1])
        older = len(rows) > limit
        rows = rows[:limit]
        newer = before_id is not None
    return FailedPage(
        events=rows,
        newer_than=rows[0].id if rows and newer else None,
        older_than=rows[-1].id if rows and older else None,
        total_since=total_since,
    )


def failed_event(account: Account, event_id: int) -> FailedEvent | None:
    return FailedEvent.objects.for_account(account).filter(pk=event_id).first()


def failed_filter_choices(account: Account, now: datetime | None = None
                          ) -> tuple[list[str], list[str]]:
    """Codes and streams seen in the account's failed events of the last 90 days."""
    since = (now or datetime.now(UTC)) - timedelta(days=CODE_CHOICES_DAYS)
    recent = FailedEvent.objects.for_account(account).filter(received_at__gte=since).order_by()
    codes = sorted(set(recent.values_list("code", flat=True).distinct()))
    streams = sorted(set(recent.exclude(stream="").values_list("stream", flat=True).distinct()))
    return codes, streams
