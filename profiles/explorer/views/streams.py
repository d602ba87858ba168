"""The stream explorer's pages (Data Managers and Admins) and account usage (Admins).

Thin views: they read through ``profiles.explorer.streams``, ``profiles.collection.usage`` and
``profiles.explorer.selectors`` (the same functions the API uses), render inside the page shell
(``cdp_site.shell``), and answer htmx requests with the fragment they replace. Every read is
scoped to the actor's current account: a stream of another account is simply not found.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from django.core.paginator import Paginator
from django.http import HttpResponse, HttpResponseRedirect, QueryDict
from django.shortcuts import render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST

from cdp_site.models import WriteKey
from cdp_site.shell import page_actor, render_page, strata_page
from profiles.collection import usage
from profiles.explorer import selectors, streams
from profiles.explorer.aggregate import SKETCH_SIZE, estimate_distinct
from profiles.explorer.api.filters import KEY_ORDERINGS, RawKeyFilter
from profiles.models import AccountNotice, RawEvent, RawKey, Stream, TrackingPlan

if TYPE_CHECKING:
    from django.http import HttpRequest

    from cdp_site.models import Account

KEYS_PER_PAGE = 100
LIVE_LIMIT = 50
PERIOD_LABELS = {"24h": "24 hours", "7d": "7 days", "30d": "30 days", "90d": "90 days"}
# Buckets offered per period: enough bars to read, never thousands.
PERIOD_BUCKETS = {
    "24h": ("hour",),
    "7d": ("hour", "day"),
    "30d": ("day", "week"),
    "90d": ("day", "week"),
}
PERIOD_DAYS = {"24h": 1, "7d": 7, "30d": 30, "90d": 90}
KEY_SORTS = [("-times_seen", "Most seen"), ("key", "Name"), ("-last_seen", "Recently seen"),
             ("-first_seen", "Newest")]


def _is_htmx(request: HttpRequest) -> bool:
    return request.headers.get("HX-Request") == "true"


def _stream_or_404(request: HttpRequest, name: str) -> Stream | HttpResponse:
    stream = Stream.objects.for_account(page_actor(request).account).filter(name=name).first()
    if stream is None:
        return render_page(request, "cdp_site/404.html", {
            "heading": "No such stream",
            "message": f"This account has no stream named “{name}”.",
            "back_url": reverse("streams:list"), "back_label": "All streams",
        }, section="streams", title="Not found", status=404)
    return stream


def _safe_next(request: HttpRequest, fallback: str) -> str:
    target = request.POST.get("next") or ""
    if target and url_has_allowed_host_and_scheme(target, {request.get_host()},
                                                  request.is_secure()):
        return target
    return fallback


# The streams list.


@require_GET
@strata_page("schema.view")
def stream_list(request: HttpRequest) -> HttpResponse:
    account = page_actor(request).account
    now = datetime.now(UTC)
    rows = list(streams.with_activity(Stream.objects.for_account(account), now)
                .order_by("name"))
    lines = selectors.hourly_sparklines(account, now)
    failed = selectors.failed_counts(account, now - timedelta(hours=24))
    key_counts = selectors.raw_key_counts(account)
    for stream in rows:
        stream.sparkline = lines.get(stream.name, [0] * selectors.SPARK_HOURS)
        stream.failed_24h = failed.get(stream.name, 0)
        stream.key_count = key_counts.get(stream.name, 0)
    last = max((s.last_message_at for s in rows if s.last_message_at), default=None)
    return render_page(request, "profiles/stream_list.html", {
        "streams": rows,
        "elsewhere": [] if rows else selectors.other_accounts_with_streams(request.user, account),
        "events_24h": sum(s.events_24h for s in rows),
        "failed_24h": sum(failed.values()),
        "last_message_at": last,
        "active_streams": sum(1 for s in rows if s.events_24h),
    }, section="streams", title="Streams")


# One stream: ingress, raw keys, violations.


def _period(request: HttpRequest) -> tuple[str, str]:
    period = request.GET.get("period", "24h")
    if period not in PERIOD_BUCKETS:
        period = "24h"
    bucket = request.GET.get("bucket", "")
    if bucket not in PERIOD_BUCKETS[period]:
        bucket = streams.DEFAULT_BUCKET[period]
        if bucket not in PERIOD_BUCKETS[period]:
            bucket = PERIOD_BUCKETS[period][0]
    return period, bucket


def _with_params(params: QueryDict, **changes: str | None) -> str:
    """The current query string with some parameters changed (None drops one)."""
    merged = params.copy()
    for name, value in changes.items():
        if value is None:
            merged.pop(name, None)
        else:
            merged[name] = value
    text = merged.urlencode()
    return f"?{text}" if text else "?"


def _chart_spec(series: streams.IngressSeries) -> dict[str, Any]:
    return {
        "bucket": series.bucket,
        "timezone": series.timezone,
        "starts": [start.isoformat() for start, _n in series.buckets],
        "values": [n for _start, n in series.buckets],
        "unit": "events",
    }


@dataclass
class KeyFilters:
    q: str
    used: str  # "", "true", "false"
    common: str
    show_hidden: bool
    ordering: str

    @classmethod
    def from_query(cls, params: QueryDict) -> KeyFilters:
        def choice(name: str) -> str:
            value = params.get(name, "")
            return value if value in ("true", "false") else ""

        ordering = params.get("ordering", "-times_seen")
        return cls(
            q=params.get("q", "").strip()[:200],
            used=choice("used"),
            common=choice("common"),
            show_hidden=params.get("hidden") == "all",
            ordering=ordering if ordering in KEY_ORDERINGS else "-times_seen",
        )

    def filter_data(self) -> dict[str, str]:
        data = {"q": self.q, "used": self.used, "common": self.common, "ordering": self.ordering}
        if not self.show_hidden:
            data["hidden"] = "false"
        return {name: value for name, value in data.items() if value}

    @property
    def active(self) -> bool:
        return bool(self.q or self.used or self.common)


def _key_row(raw_key: RawKey) -> dict[str, Any]:
    """One raw key as the table shows it (``raw_key`` annotated by ``streams.raw_keys``)."""
    counts = {name: n for name, n in (raw_key.type_counts or {}).items() if n}
    counted = sum(counts.values()) or 1
    share = streams.key_share(raw_key)
    return {
        "key": raw_key,
        "unique": estimate_distinct(raw_key.sketch),
        "unique_approximate": len(raw_key.sketch) >= SKETCH_SIZE,
        "share": share,
        "common": share >= streams.COMMON_SHARE,
        "types": sorted(((name, n, n / counted) for name, n in counts.items()),
                        key=lambda item: (-item[1], item[0])),
    }


def _key_rows(account: Account, stream: Stream, filters: KeyFilters, page: str | None
              ) -> dict[str, Any]:
    """The raw keys table: filtered with the API's own FilterSet, one page of keys."""
    keys = streams.raw_keys(account, stream.name)
    filtered = RawKeyFilter(QueryDict(urlencode(filters.filter_data())), queryset=keys).qs
    page_obj = Paginator(filtered, KEYS_PER_PAGE).get_page(page)
    all_keys = RawKey.objects.for_account(account).filter(stream=stream.name)
    return {
        "key_rows": [_key_row(raw_key) for raw_key in page_obj.object_list],
        "key_page": page_obj,
        "key_filters": filters,
        "key_total": all_keys.filter(hidden=False).count(),
        "hidden_total": all_keys.filter(hidden=True).count(),
        "key_sorts": KEY_SORTS,
    }


def _keys_context(request: HttpRequest, stream: Stream) -> dict[str, Any]:
    actor = page_actor(request)
    filters = KeyFilters.from_query(request.GET)
    context = _key_rows(actor.account, stream, filters, request.GET.get("page"))
    params = request.GET.copy()
    params.pop("page", None)
    context.update({
        "stream": stream,
        "can_edit": actor.has("schema.edit"),
        "keys_query": params.urlencode(),
        "return_to": request.get_full_path() if not _is_htmx(request) else
        reverse("streams:detail", args=[stream.name]) + _with_params(params),
    })
    return context


def _violations(account: Account, stream: Stream, period: str) -> list[dict[str, Any]]:
    rows = {row["event"]: row for row in streams.violation_summary(
        account, stream.name, days=PERIOD_DAYS[period])}
    plans = {plan.event: plan for plan in
             TrackingPlan.objects.for_account(account).filter(stream=stream.name)}
    merged = []
    for event in sorted(set(rows) | set(plans)):
        row = rows.get(event, {"violations": 0, "blocked": 0})
        plan = plans.get(event)
        merged.append({
            "event": event or "(no event name)",
            "plan": plan,
            "violations": row["violations"],
            "blocked": row["blocked"],
        })
    return sorted(merged, key=lambda r: (-(r["violations"] + r["blocked"]), r["event"]))


@require_GET
@strata_page("schema.view")
def stream_detail(request: HttpRequest, name: str) -> HttpResponse:
    stream = _stream_or_404(request, name)
    if isinstance(stream, HttpResponse):
        return stream
    account = page_actor(request).account
    period, bucket = _period(request)
    series = streams.ingress_series(account, stream.name, period=period, bucket=bucket)
    activity = streams.with_activity(Stream.objects.filter(pk=stream.pk)).get()
    now = datetime.now(UTC)
    failed = selectors.failed_counts(account, now - timedelta(hours=24)).get(stream.name, 0)
    sources = list(WriteKey.objects.for_account(account).filter(
        stream=stream.name, revoked_at__isnull=True).values_list("name", flat=True))
    params = request.GET.copy()
    periods = [
        {"value": p, "label": p, "url": _with_params(params, period=p, bucket=None, page=None),
         "current": p == period}
        for p in PERIOD_BUCKETS
    ]
    buckets = [
        {"value": b, "label": b, "current": b == bucket,
         "url": _with_params(params, bucket=b) if b in PERIOD_BUCKETS[period] else ""}
        for b in streams.BUCKETS
    ]
    context = {
        "stream": stream,
        "tab": "overview",
        "series": series,
        "chart": _chart_spec(series),
        "period": period,
        "period_label": PERIOD_LABELS[period],
        "bucket": bucket,
        "periods": periods,
        "buckets": buckets,
        "last_message_at": activity.last_message_at,
        "events_24h": activity.events_24h,
        "peak": max((n for _start, n in series.buckets), default=0),
        "failed_24h": failed,
        "sources": sources,
        "violations": _violations(account, stream, period),
        "ingress_api": reverse("stream-ingress", args=[stream.name]),
    }
    context.update(_keys_context(request, stream))
    return render_page(request, "profiles/stream_detail.html", context,
                       section="streams", title=stream.name)


@require_GET
@strata_page("schema.view")
def stream_keys(request: HttpRequest, name: str) -> HttpResponse:
    """The raw keys card alone (htmx: search, filters, paging); a plain visit goes to the
    stream page with the same filters."""
    stream = _stream_or_404(request, name)
    if isinstance(stream, HttpResponse):
        return stream
    if not _is_htmx(request):
        query = request.GET.urlencode()
        return HttpResponseRedirect(reverse("streams:detail", args=[stream.name])
                                    + (f"?{query}" if query else "") + "#raw-keys")
    response = render(request, "profiles/_raw_keys_results.html", _keys_context(request, stream))
    response["Cache-Control"] = "no-store"
    return response


@require_POST
@strata_page("schema.edit")
def key_visibility(request: HttpRequest, name: str) -> HttpResponse:
    """Hide a raw key (or show it again). htmx gets the key's rows back (nothing when the key
    leaves the current view); a plain form post goes back to where it came from."""
    stream = _stream_or_404(request, name)
    if isinstance(stream, HttpResponse):
        return stream
    account = page_actor(request).account
    raw_key = RawKey.objects.for_account(account).filter(
        stream=stream.name, key=request.POST.get("key", "")).first()
    if raw_key is None:
        return render_page(request, "cdp_site/404.html", {
            "heading": "No such raw key",
            "message": "This stream has no such key.",
            "back_url": reverse("streams:detail", args=[stream.name]),
            "back_label": f"Back to {stream.name}",
        }, section="streams", title="Not found", status=404)
    hidden = request.POST.get("hidden") == "true"
    streams.set_key_hidden(raw_key, hidden)
    back = _safe_next(request, reverse("streams:detail", args=[stream.name]))
    if not _is_htmx(request):
        return HttpResponseRedirect(back)
    show_hidden = request.POST.get("show_hidden") == "true"
    if hidden and not show_hidden:
        return HttpResponse("")  # the key leaves the table
    return render(request, "profiles/_raw_key_row.html", {
        "row": _key_row(streams.raw_keys(account, stream.name).get(pk=raw_key.pk)),
        "stream": stream, "can_edit": True, "return_to": back, "show_hidden": show_hidden,
    })


# The live view.


EVENT_TITLES = {"identify": "Identify", "alias": "Alias", "group": "Group", "screen": "Screen"}


def _event_view(event: RawEvent) -> dict[str, Any]:
    """A raw event as the live view lists it: a title a person recognises (the event name,
    the page's title, who identified) and the JSON as received."""
    message = event.message if isinstance(event.message, dict) else {}
    given_properties, given_traits = message.get("properties"), message.get("traits")
    properties = given_properties if isinstance(given_properties, dict) else {}
    traits = given_traits if isinstance(given_traits, dict) else {}
    kind = event.type or str(message.get("type") or "")
    detail = ""
    who_field: tuple[str, str] | None = None
    if event.event:
        title = event.event
    elif kind in ("page", "screen"):
        title = str(message.get("name") or properties.get("title") or properties.get("path")
                    or ("Page view" if kind == "page" else "Screen view"))
        detail = str(properties.get("path") or "")
    elif kind in EVENT_TITLES:
        title = EVENT_TITLES[kind]
        detail = str(traits.get("email") or traits.get("name") or "")
    elif kind:
        title = kind
    else:  # a JSON record (a CRM sync, a webhook): its identifier and first values
        title, detail, found_who = _record_summary(message)
        who_field = found_who
    who = event.user_id or event.anonymous_id
    who_kind = "user" if event.user_id else ("anonymous" if event.anonymous_id else "")
    if not who and not kind and who_field:
        who_kind, who = who_field
    return {
        "id": event.id,
        "title": title.strip()[:200],
        "detail": detail[:200] if detail != title else "",
        "type": kind or "record",
        "who": who,
        "who_kind": who_kind,
        "received_at": event.received_at,
        "event_at": event.event_at,
        "message_id": event.message_id,
        "source": event.source,
        "json": json.dumps(event.message, indent=2, ensure_ascii=False, default=str),
        "warnings": event.warnings or [],
    }


RECORD_IDS = ("email", "user_id", "userid", "customer_id", "id", "uid", "_uid")


def _leaves(value: Any, path: str = "", depth: int = 0) -> list[tuple[str, Any]]:
    """A record's scalar values with their dotted paths, in order (three levels deep)."""
    if isinstance(value, dict) and depth < 3:
        return [leaf for key, inner in value.items()
                for leaf in _leaves(inner, f"{path}.{key}" if path else str(key), depth + 1)]
    if isinstance(value, list) and value and all(isinstance(v, str | int | float) for v in value):
        return [(path, ", ".join(str(v) for v in value[:5]))]
    if isinstance(value, str | int | float) and not isinstance(value, bool) and str(value):
        return [(path, value)]
    return []


def _record_summary(message: dict[str, Any]) -> tuple[str, str, tuple[str, str] | None]:
    """(title, detail, (identifier name, value) or None) of a record with no event name: the
    live view showed every CRM record as "Record" from no one."""
    leaves = _leaves(message)
    named = {path.rsplit(".", 1)[-1].lower(): (path, value) for path, value in reversed(leaves)}
    who = next((named[name] for name in RECORD_IDS if name in named), None)
    shown = [(path, value) for path, value in leaves if who is None or path != who[0]]
    title = " · ".join(f"{path.rsplit('.', 1)[-1]} {value}" for path, value in shown[:3])
    detail = f"{len(leaves)} values" if len(shown) > 3 else ""
    return (title or "Empty record", detail,
            (who[0].rsplit(".", 1)[-1], str(who[1])) if who else None)


def _after_id(request: HttpRequest) -> int | None:
    try:
        value = int(request.GET.get("after_id", ""))
    except ValueError:
        return None
    return value if value >= 0 else None


@require_GET
@strata_page("schema.view")
def stream_live(request: HttpRequest, name: str) -> HttpResponse:
    stream = _stream_or_404(request, name)
    if isinstance(stream, HttpResponse):
        return stream
    events = streams.latest_events(page_actor(request).account, stream.name, limit=LIVE_LIMIT)
    return render_page(request, "profiles/stream_live.html", {
        "stream": stream,
        "tab": "live",
        "events": [_event_view(e) for e in events],
        "last_id": events[0].id if events else 0,
        "limit": LIVE_LIMIT,
    }, section="streams", title=f"{stream.name} · live")


@require_GET
@strata_page("schema.view")
def stream_live_events(request: HttpRequest, name: str) -> HttpResponse:
    """What arrived after ``after_id``, newest first, as list items, with the poller that
    asks for what comes next (htmx swaps both)."""
    stream = _stream_or_404(request, name)
    if isinstance(stream, HttpResponse):
        return stream
    after_id = _after_id(request) or 0
    events = streams.latest_events(page_actor(request).account, stream.name, after_id=after_id,
                                   limit=LIVE_LIMIT)
    response = render(request, "profiles/_live_events.html", {
        "stream": stream,
        "events": [_event_view(e) for e in events],
        "last_id": events[0].id if events else after_id,
        "new": True,
    })
    response["Cache-Control"] = "no-store"
    return response


# Failed events.


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value else None
    except ValueError:
        return None


@require_GET
@strata_page("schema.view")
def failed_events(request: HttpRequest) -> HttpResponse:
    account = page_actor(request).account
    stream = request.GET.get("stream", "")[:100]
    code = request.GET.get("code", "")[:64]
    page = selectors.failed_events_page(
        account, stream=stream, code=code, before_id=_int(request.GET.get("before")),
        after_id=_int(request.GET.get("after")),
    )
    codes, failed_streams = selectors.failed_filter_choices(account)
    known = set(Stream.objects.for_account(account).values_list("name", flat=True))
    params = request.GET.copy()
    return render_page(request, "profiles/failed_events.html", {
        "page": page,
        "stream": stream,
        "code": code,
        "codes": sorted(set(codes) | ({code} if code else set())),
        "stream_choices": sorted(set(failed_streams) | known),
        "older_url": _with_params(params, before=str(page.older_than), after=None)
        if page.older_than else "",
        "newer_url": _with_params(params, after=str(page.newer_than), before=None)
        if page.newer_than else "",
        "filtered": bool(stream or code),
    }, section="failed", title="Failed events")


@require_GET
@strata_page("schema.view")
def failed_event_detail(request: HttpRequest, pk: int) -> HttpResponse:
    event = selectors.failed_event(page_actor(request).account, pk)
    if event is None:
        return render_page(request, "cdp_site/404.html", {
            "heading": "No such failed event",
            "back_url": reverse("explorer-failed-events"), "back_label": "All failed events",
        }, section="failed", title="Not found", status=404)
    body = event.body
    try:
        body = json.dumps(json.loads(body), indent=2, ensure_ascii=False)
        is_json = True
    except ValueError:
        is_json = False
    context = {"event": event, "body": body, "is_json": is_json}
    if _is_htmx(request):
        return render(request, "profiles/_failed_body.html", context)
    return render_page(request, "profiles/failed_event.html", context,
                       section="failed", title=f"Failed event {event.pk}")


# Usage (Admins).


USAGE_RANGES = {"30d": 30, "90d": 90, "365d": 365}
USAGE_MONTHS = 12


@require_GET
@strata_page("admin.view")
def usage_page(request: HttpRequest) -> HttpResponse:
    account = page_actor(request).account
    shown = request.GET.get("range", "30d")
    if shown not in USAGE_RANGES:
        shown = "30d"
    report = usage.usage_report(account, months=USAGE_MONTHS)
    days = report.days[-USAGE_RANGES[shown]:]
    percent = report.percent_used
    opened = account.created_at.astimezone(UTC).strftime("%Y-%m") if account.created_at else ""
    return render_page(request, "profiles/usage.html", {
        "report": report,
        "range": shown,
        "ranges": [("30d", "30 days"), ("90d", "90 days"), ("365d", "12 months")],
        "day_chart": {
            "bucket": "day", "timezone": "UTC",
            "starts": [f"{day.isoformat()}T00:00:00+00:00" for day, _n in days],
            "values": [n for _day, n in days], "unit": "events",
        },
        "range_total": sum(n for _day, n in days),
        "month_rows": [
            {"month": datetime.strptime(month, "%Y-%m").replace(tzinfo=UTC), "events": n,
             "percent": (100 * n / report.quota) if report.quota else None}
            for month, n in reversed(report.months) if month >= opened
        ],
        "percent": percent,
        "meter": min(100.0, percent or 0.0),
        "month_total_streams": sum(n for _s, n in report.streams) or 1,
        "can_resolve": page_actor(request).has("admin.edit"),
    }, section="usage", title="Usage")


@require_POST
@strata_page("admin.edit")
def resolve_notice(request: HttpRequest, pk: int) -> HttpResponse:
    """Dismiss a notice on the usage page (it stays in the API with ``resolved_at``)."""
    notice = AccountNotice.objects.for_account(page_actor(request).account).filter(pk=pk).first()
    if notice is not None:
        usage.resolve_notice(notice)
    return HttpResponseRedirect(reverse("explorer-usage"))
