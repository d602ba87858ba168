"""Streams and what the stream explorer shows about them.

Reads come from the aggregator's tables (``profiles.explorer.aggregate``), never from scanning raw
events, except the latest-events view, which reads the newest rows of one stream by index.
Writes are few: create or delete a stream, hide a raw key.

Definitions the explorer relies on:

- *events in the last 24 hours*: the sum of the stream's hourly counts over the 24 hourly
  buckets ending with the current hour (so up to 24 h 59 min of events).
- *common* keys are seen in at least ``COMMON_SHARE`` (10 %) of the stream's events, both
  counted since the aggregator first saw the stream (raw keys and hourly counts are kept for
  the stream's whole life, unlike raw events, which retention drops); *uncommon* ones in fewer.
- *used* keys are read by at least one mapping (``times_used_by_mappings`` > 0).
- ingress buckets of a day or a week start at midnight (Monday for weeks) in the account's
  time zone; hourly counts are whole UTC hours, each assigned to the bucket it starts in.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.db import IntegrityError, transaction
from django.db.models import F, IntegerField, OuterRef, QuerySet, Subquery, Sum, Value
from django.db.models.functions import Coalesce

from cdp_site.models import WriteKey
from profiles.collection import plans
from profiles.models import (
    RawEvent,
    RawKey,
    Stream,
    StreamHourlyCount,
    TrackingPlan,
    ViolationCount,
)

if TYPE_CHECKING:
    from cdp_site.models import Account

COMMON_SHARE = 0.10
PERIODS = {
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
    "90d": timedelta(days=90),
}
BUCKETS = ("hour", "day", "week")
DEFAULT_BUCKET = {"24h": "hour", "7d": "day", "30d": "day", "90d": "week"}
LATEST_LIMIT = 50
LATEST_MAX = 200


class StreamError(Exception):
    """A request the explorer refuses: machine-readable code, message, HTTP status."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


def _hour(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def account_zone(account: Account) -> ZoneInfo:
    try:
        return ZoneInfo(account.timezone or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


# Streams.


def with_activity(streams: QuerySet, now: datetime | None = None) -> QuerySet:
    """Streams annotated with ``last_message_at`` and ``events_24h`` (from hourly counts)."""
    since = _hour(now or datetime.now(UTC)) - timedelta(hours=23)
    counts = StreamHourlyCount.objects.filter(account=OuterRef("account"),
                                              stream=OuterRef("name"))
    last = counts.order_by("-hour").values("last_message_at")[:1]
    recent = (counts.filter(hour__gte=since).order_by().values("stream")
              .annotate(n=Sum("events")).values("n"))
    return streams.annotate(
        last_message_at=Subquery(last),
        events_24h=Coalesce(Subquery(recent, output_field=IntegerField()), Value(0)),
    )


def stream_events_total(account: Account, stream: str) -> int:
    total = StreamHourlyCount.objects.for_account(account).filter(stream=stream).aggregate(
        n=Sum("events"))["n"]
    return int(total or 0)


def create_stream(account: Account, *, name: str, description: str = "") -> Stream:
    """Create a named stream ahead of its first event (Data Managers)."""
    try:
        with transaction.atomic():
            return Stream.objects.create(account=account, name=name, description=description)
    except IntegrityError:
        raise StreamError("stream_exists", f"There is already a stream {name!r}.", 409) from None


@transaction.atomic
def delete_stream(stream: Stream) -> None:
    """Delete a stream with its raw keys and tracking plans. Refused while a write key sends
    to it. Raw events stay until retention drops them, and hourly counts stay (they are the
    account's usage). A stream that still receives events (a page naming it) comes back with
    its next event."""
    keys = WriteKey.objects.for_account(stream.account).filter(
        stream=stream.name, revoked_at__isnull=True
    )
    names = sorted(keys.values_list("name", flat=True))
    if names:
        raise StreamError(
            "stream_in_use",
            f"Write keys send to {stream.name!r}: {', '.join(names)}. Point them at another "
            "stream or revoke them first.",
            409,
        )
    RawKey.objects.for_account(stream.account).filter(stream=stream.name).delete()
    TrackingPlan.objects.for_account(stream.account).filter(stream=stream.name).delete()
    plans.forget(stream.account, stream.name)
    stream.delete()


# Ingress.


@dataclass
class IngressSeries:
    period: str
    bucket: str
    timezone: str
    start: datetime
    end: datetime
    buckets: list[tuple[datetime, int]]

    @property
    def total(self) -> int:
        return sum(events for _start, events in self.buckets)


def _floor(moment: datetime, bucket: str, zone: ZoneInfo) -> datetime:
    if bucket == "hour":
        return _hour(moment)
    local = moment.astimezone(zone)
    day = local.date()
    if bucket == "week":
        day -= timedelta(days=day.weekday())
    return datetime(day.year, day.month, day.day, tzinfo=zone)


def _next(start: datetime, bucket: str, zone: ZoneInfo) -> datetime:
    if bucket == "hour":
        return start + timedelta(hours=1)
    day = start.astimezone(zone).date() + timedelta(days=7 if bucket == "week" else 1)
    return datetime(day.year, day.month, day.day, tzinfo=zone)


def ingress_series(account: Account, stream: str, *, period: str = "24h",
                   bucket: str | None = None, now: datetime | None = None) -> IngressSeries:
    """Events per bucket over the period ending now, every bucket present (zero-filled)."""
    if period not in PERIODS:
        raise StreamError("invalid_period", f"period must be one of {', '.join(PERIODS)}.")
    bucket = bucket or DEFAULT_BUCKET[period]
    if bucket not in BUCKETS:
        raise StreamError("invalid_bucket", f"bucket must be one of {', '.join(BUCKETS)}.")
    zone = account_zone(account)
    end = now or datetime.now(UTC)
    first = _floor(end - PERIODS[period], bucket, zone)
    starts = [first]
    while (following := _next(starts[-1], bucket, zone)) <= end:
        starts.append(following)
    totals = dict.fromkeys(starts, 0)
    rows = StreamHourlyCount.objects.for_account(account).filter(
        stream=stream, hour__gte=_hour(first), hour__lte=end
    ).values_list("hour", "events")
    for hour, events in rows:
        start = _floor(hour, bucket, zone)
        if start in totals:
            totals[start] += events
    return IngressSeries(period, bucket, str(zone), first, end, list(totals.items()))


# Latest events, for the live view.


def latest_events(account: Account, stream: str, *, after_id: int | None = None,
                  limit: int = LATEST_LIMIT) -> list[RawEvent]:
    """The stream's newest raw events (newest first), only those after ``after_id`` when
    given: poll with the highest id seen to get what arrived since."""
    events = RawEvent.objects.for_account(account).filter(stream=stream)
    if after_id is not None:
        events = events.filter(id__gt=after_id)
    return list(events.order_by("-id")[: max(1, min(limit, LATEST_MAX))])


# Raw keys.


def raw_keys(account: Account, stream: str, keys: QuerySet | None = None) -> QuerySet:
    """The stream's raw keys (narrowing ``keys``, the account's, when given), annotated with
    the stream's event total for shares and the common/uncommon split, ordered by key."""
    if keys is None:
        keys = RawKey.objects.for_account(account)
    total = stream_events_total(account, stream)
    return keys.filter(stream=stream).annotate(
        stream_events=Value(total, output_field=IntegerField())
    ).order_by("key")


def filter_common(keys: QuerySet, common: bool) -> QuerySet:
    """Keys seen in at least COMMON_SHARE of the stream's events (or fewer, for False)."""
    threshold = F("stream_events") * COMMON_SHARE
    return keys.filter(times_seen__gte=threshold) if common else keys.exclude(
        times_seen__gte=threshold
    )


def key_share(raw_key: RawKey) -> float:
    """Share of the stream's events that carried this key (0 to 1)."""
    total = getattr(raw_key, "stream_events", None)
    if total is None:
        total = stream_events_total(raw_key.account, raw_key.stream)
    return min(1.0, raw_key.times_seen / total) if total else 0.0


def set_key_hidden(raw_key: RawKey, hidden: bool) -> RawKey:
    """Hide a key from the explorer's default view (it is still counted)."""
    if raw_key.hidden != hidden:
        raw_key.hidden = hidden
        raw_key.save(update_fields=["hidden"])
    return raw_key


# Tracking plan violations.


def violation_summary(account: Account, stream: str, *, days: int = 30,
                      now: datetime | None = None) -> list[dict[str, Any]]:
    """Violations and blocked events per event name over the last ``days`` days, most first."""
    since = (now or datetime.now(UTC)).astimezone(UTC).date() - timedelta(days=days - 1)
    rows = (ViolationCount.objects.for_account(account)
            .filter(stream=stream, day__gte=since).order_by().values("event")
            .annotate(violations=Sum("violations"), blocked=Sum("blocked")))
    summary = [
        {"event": row["event"], "violations": row["violations"], "blocked": row["blocked"]}
        for row in rows
    ]
    return sorted(summary, key=lambda row: (-(row["violations"] + row["blocked"]), row["event"]))
