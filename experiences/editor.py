"""What the experience editor offers a marketer: the account's audiences with their sizes, its
goals, and the events and streams Strata has seen with their counts (so a goal is picked from
what really arrives, not typed), and the experience in the API's shape.

Counts are over the last ``SEEN_DAYS`` days: events by (name, stream) from the profiles'
events, one grouped query bounded by the (account, event, at) index; streams from their
hourly counts. A goal's count is its event's on its stream, or on every stream when it names
none (as ``experiences.tracking`` counts it).
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from django.db.models import Count, Sum
from django.utils import timezone

from audiences.models import Audience
from experiences.models import Experience, Goal
from profiles.models import ProfileEvent, Stream, StreamHourlyCount

if TYPE_CHECKING:
    from cdp_site.models import Account

SEEN_DAYS = 30
EVENTS_LISTED = 300


def seen_events(account: Account, days: int = SEEN_DAYS) -> list[dict[str, Any]]:
    """Event names by stream with their counts in the last ``days`` days, most frequent
    first."""
    since = timezone.now() - timedelta(days=days)
    rows = (ProfileEvent.objects.filter(account=account, at__gte=since).exclude(event="")
            .values("event", "stream").annotate(count=Count("id"))
            .order_by("-count", "event", "stream")[:EVENTS_LISTED])
    return [{"event": row["event"], "stream": row["stream"], "count": row["count"]}
            for row in rows]


def seen_streams(account: Account, days: int = SEEN_DAYS) -> list[dict[str, Any]]:
    """Every stream of the account with the events it received in the last ``days`` days."""
    since = timezone.now() - timedelta(days=days)
    counts = dict(StreamHourlyCount.objects.filter(account=account, hour__gte=since)
                  .values("stream").annotate(total=Sum("events"))
                  .values_list("stream", "total"))
    names = set(Stream.objects.filter(account=account).values_list("name", flat=True))
    names |= set(counts)
    return sorted(({"name": name, "count": int(counts.get(name) or 0)} for name in names),
                  key=lambda row: (-row["count"], row["name"]))


def goal_count(goal: Goal, events: list[dict[str, Any]]) -> int:
    return sum(row["count"] for row in events if row["event"] == goal.event
               and (not goal.stream or row["stream"] == goal.stream))


def catalog(account: Account) -> dict[str, Any]:
    """Everything the editor page needs up front."""
    events = seen_events(account)
    audiences = Audience.objects.filter(account=account, archived=False).order_by("name", "id")
    return {
        "days": SEEN_DAYS,
        "audiences": [{"slug": a.slug, "name": a.name, "size": a.size,
                       "api_accessible": a.api_accessible} for a in audiences],
        "goals": [{"key": g.key, "name": g.name, "event": g.event, "stream": g.stream,
                   "where": g.where, "count": goal_count(g, events)}
                  for g in Goal.objects.filter(account=account).order_by("name", "id")],
        "events": events,
        "streams": seen_streams(account),
    }


def experience_state(exp: Experience) -> dict[str, Any]:
    """The stored experience as the editor edits it (the management API's input shape)."""
    variants = sorted(exp.variants.select_related("audience"), key=lambda v: (v.position, v.pk))
    links = exp.experience_goals.select_related("goal").order_by("-primary", "id")
    return {
        "key": exp.key, "name": exp.name, "description": exp.description, "type": exp.type,
        "distribution": exp.distribution, "value_type": exp.value_type,
        "traffic_allocation": exp.traffic_allocation, "target": exp.target,
        "target_audiences": sorted(a.slug for a in exp.target_audiences.all()),
        "variants": [{"uid": v.uid, "key": v.key, "name": v.name, "value": v.value,
                      "content": v.content, "base": v.is_base, "weight": v.weight,
                      "audience": v.audience.slug if v.audience is not None else None,
                      "priority": v.priority} for v in variants],
        "goals": [{"goal": link.goal.key, "primary": link.primary} for link in links],
        "status": exp.status, "phase": exp.phase,
    }
