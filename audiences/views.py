"""Audience pages (Audience Managers, Marketers, and the other roles with ``audiences.view``):
the list with sizes and trends, the builder, an audience's page (size chart, status, the rule
in both forms, sample members, CSV), why a profile is in or not in an audience, and a
profile's audiences.

Thin views. Saving and deleting go through the audiences API (/api/v1/audiences/, the same
services the API runs) from the page's script with the session; reads come from
audiences.membership, audiences.builder, audiences.explain and audiences.export. Every
profile value passes through the reader's PII policy (profiles.masking) before it reaches a
template or a CSV: a member without ``pii.view`` never receives a raw PII value.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from django.db import connection
from django.http import HttpResponse, HttpResponseBase, JsonResponse, StreamingHttpResponse
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET

from audiences import builder, export, membership
from audiences.compiler import CompileContext, compile_predicate
from audiences.explain import explain_profile, find_profile, profile_view
from audiences.filterql import to_text
from audiences.models import Audience, AudienceMembership, MembershipChange
from audiences.rules import RuleError
from cdp_site.shell import page_actor, render_page, strata_page
from profiles import selectors as select
from profiles.masking import policy_for_actor

if TYPE_CHECKING:
    from django.http import HttpRequest

    from audiences.membership import SizePoint
    from cdp_site.models import Account
    from profiles.models import Profile

SECTION = "audiences"
SPARK_DAYS = 7
SPARK_POINTS = 28
SAMPLE_MEMBERS = 20
HISTORY_POINTS = 500


def _not_found(request: HttpRequest, heading: str, message: str) -> HttpResponse:
    return render_page(request, "cdp_site/404.html", {
        "heading": heading, "message": message,
        "back_url": reverse("audiences:list"), "back_label": "All audiences",
    }, section=SECTION, title="Not found", status=404)


def _audience(request: HttpRequest, slug: str) -> Audience | None:
    return (Audience.objects.filter(account=page_actor(request).account, slug=slug,
                                    archived=False).first())


def _no_audience(request: HttpRequest, slug: str) -> HttpResponse:
    return _not_found(request, "No such audience",
                      f"This account has no audience “{slug}”.")


def rule_text(rule: dict[str, Any]) -> str:
    """The FilterQL form, or "" for rules it cannot print (event conditions)."""
    try:
        return to_text(rule)
    except (ValueError, KeyError, TypeError):
        return ""


# --------------------------------------------------------------------------- the list


def _downsample(points: list[int], n: int = SPARK_POINTS) -> list[int]:
    """At most ``n`` points: the last value of each of n equal slices."""
    if len(points) <= n:
        return points
    return [points[min(len(points) - 1, round((i + 1) * len(points) / n) - 1)]
            for i in range(n)]


@dataclass(frozen=True)
class AudienceRow:
    """A line of the audience list: the audience, its size trend and its rule as text."""

    audience: Audience
    trend: list[int]
    change: int | None
    text: str


def size_trends(account: Account, ids: list[int]) -> dict[int, list[int]]:
    """Each audience's size points of the last SPARK_DAYS days (oldest first), through the
    (audience, at) index one audience at a time."""
    if not ids:
        return {}
    since = timezone.now() - timedelta(days=SPARK_DAYS)
    with connection.cursor() as cur:
        cur.execute("""
            SELECT a.id, s.size FROM unnest(%s::bigint[]) AS a(id)
            CROSS JOIN LATERAL (
                SELECT at, size FROM audiences_audiencesize
                WHERE audience_id = a.id AND account_id = %s AND at >= %s
                ORDER BY at DESC LIMIT 400) s
            ORDER BY a.id, s.at""", [ids, account.pk, since])
        out: dict[int, list[int]] = {}
        for pk, size in cur.fetchall():
            out.setdefault(pk, []).append(size)
    return {pk: _downsample(points) for pk, points in out.items()}


@require_GET
@strata_page("audiences.view")
def audience_list(request: HttpRequest) -> HttpResponse:
    actor = page_actor(request)
    q = (request.GET.get("q") or "").strip()[:100]
    rows = Audience.objects.filter(account=actor.account, archived=False).order_by("name", "id")
    if q:
        rows = rows.filter(name__icontains=q) | rows.filter(slug__icontains=q)
    audiences = list(rows[:500])
    trends = size_trends(actor.account, [a.pk for a in audiences])
    listed = []
    for audience in audiences:
        trend = trends.get(audience.pk, [])
        listed.append(AudienceRow(
            audience=audience, trend=trend,
            change=(trend[-1] - trend[0]) if len(trend) > 1 else None,
            text=rule_text(audience.rule).removeprefix("FILTER "),
        ))
    return render_page(request, "audiences/list.html", {
        "audiences": listed, "q": q, "spark_days": SPARK_DAYS,
        "can_edit": actor.has("audiences.edit"),
        "computing": sum(1 for a in audiences if a.status == Audience.Status.COMPUTING),
    }, section=SECTION, title="Audiences")


# --------------------------------------------------------------------------- the builder


def _builder(request: HttpRequest, audience: Audience | None) -> HttpResponse:
    actor = page_actor(request)
    account = actor.account
    policy = policy_for_actor(actor)
    schema = membership.rule_schema(account)
    initial = audience.rule if audience is not None else {"and": []}
    return render_page(request, "audiences/builder.html", {
        "audience": audience,
        "catalog": builder.catalog(account, schema, policy,
                                   exclude_slug=audience.slug if audience else None),
        "builder_config": {
            "rule": initial,
            "audience": None if audience is None else {
                "slug": audience.slug, "name": audience.name,
                "description": audience.description,
                "api_accessible": audience.api_accessible},
            "api": {
                "list": "/api/v1/audiences/",
                "validate": "/api/v1/audiences/validate/",
                "values": reverse("audiences:builder-values"),
                "page": reverse("audiences:list"),
            },
        },
        "has_schema": bool(schema.fields),
    }, section=SECTION, title=f"Edit {audience.name}" if audience else "New audience")


@require_GET
@strata_page("audiences.edit")
def audience_new(request: HttpRequest) -> HttpResponse:
    return _builder(request, None)


@require_GET
@strata_page("audiences.edit")
def audience_edit(request: HttpRequest, slug: str) -> HttpResponse:
    audience = _audience(request, slug)
    if audience is None:
        return _no_audience(request, slug)
    return _builder(request, audience)


@require_GET
@strata_page("audiences.edit")
def builder_values(request: HttpRequest) -> HttpResponse:
    """Samples for the builder: ``?field=``, ``?attribute=`` (frequent values) or
    ``?event=`` (its properties). JSON; unknown names give 404 {"code", "message"}."""
    actor = page_actor(request)
    account = actor.account
    policy = policy_for_actor(actor)
    schema = membership.rule_schema(account)
    if "field" in request.GET:
        name = request.GET["field"]
        if name not in schema.fields:
            return _json_error("unknown_field", f"no published field named {name!r}")
        if policy.masks(name):
            return JsonResponse({"values": [], "hidden": True})
        return JsonResponse(builder.field_samples(account.pk, name, schema.fields[name]))
    if "attribute" in request.GET:
        name = request.GET["attribute"]
        if name not in schema.attributes:
            return _json_error("unknown_attribute", f"no calculated attribute named {name!r}")
        return JsonResponse(builder.attribute_samples(account.pk, name))
    if "event" in request.GET:
        return JsonResponse(builder.event_properties(account.pk, request.GET["event"][:200],
                                                     policy))
    return _json_error("bad_request", "ask for ?field=, ?attribute= or ?event=", status=400)


def _json_error(code: str, message: str, status: int = 404) -> JsonResponse:
    return JsonResponse({"code": code, "message": message}, status=status)


# --------------------------------------------------------------------------- one audience


def _chart(history: list[SizePoint]) -> dict[str, Any]:
    span = (history[-1]["at"] - history[0]["at"]) if history else timedelta(0)
    short = span <= timedelta(days=2)
    return {  # a line needs a few points; one or two read better as bars
        "type": "line" if len(history) > 2 else "bar", "label": "Members", "unit": "profiles",
        "labels": [p["at"].strftime("%H:%M" if short else "%b %d") for p in history],
        "tooltips": [p["at"].strftime("%Y-%m-%d %H:%M UTC") for p in history],
        "values": [p["size"] for p in history],
    }


def sample_members(audience: Audience, account: Account, policy: Any,
                   limit: int = SAMPLE_MEMBERS) -> list[dict[str, Any]]:
    """The latest members with their identifiers, masked for the reader."""
    rows = list(AudienceMembership.objects.filter(account_id=account.pk, audience=audience)
                .select_related("profile").order_by("-since", "-id")[:limit])
    catalog = select.field_catalog(account)
    summaries = select.summaries([r.profile for r in rows], policy, account, catalog)
    for row, summary in zip(rows, summaries, strict=True):
        summary["since"] = row.since
        summary["identifier_groups"] = [
            {"field": name, "values": values[:2], "more": len(values) - 2,
             "masked": policy.masks(name)}
            for name, values in summary["identifiers"].items()]
    return summaries


def _changes(audience: Audience, since: Any) -> dict[str, int]:
    counts = {"entry": 0, "exit": 0}
    for kind in counts:
        counts[kind] = MembershipChange.objects.filter(
            account_id=audience.account_id, audience=audience, kind=kind, at__gte=since).count()
    return counts


@require_GET
@strata_page("audiences.view")
def audience_detail(request: HttpRequest, slug: str) -> HttpResponse:
    actor = page_actor(request)
    account = actor.account
    audience = _audience(request, slug)
    if audience is None:
        return _no_audience(request, slug)
    policy = policy_for_actor(actor)
    history = membership.size_history(audience, limit=HISTORY_POINTS)
    week_ago = [p["size"] for p in history
                if p["at"] <= timezone.now() - timedelta(days=7)]
    return render_page(request, "audiences/detail.html", {
        "audience": audience,
        "text": rule_text(audience.rule),
        "history": history,
        "chart": _chart(history),
        "change_7d": (audience.size - week_ago[-1]) if week_ago and audience.size is not None
        else None,
        "changes_24h": _changes(audience, timezone.now() - timedelta(hours=24)),
        "members": sample_members(audience, account, policy),
        "policy": policy,
        "used_by": list(Audience.objects.filter(
            account=account, archived=False, depends_on__contains=[f"audience:{slug}"])
            .values_list("slug", "name")),
        "can_edit": actor.has("audiences.edit"),
        "can_delete": actor.has("audiences.delete"),
        "can_profiles": actor.has("profiles.view"),
        "size_api": f"/api/v1/audiences/{audience.slug}/size/",
        "delete_api": f"/api/v1/audiences/{audience.slug}/",
    }, section=SECTION, title=audience.name)


@require_GET
@strata_page("audiences.view")
def members_csv(request: HttpRequest, slug: str) -> HttpResponseBase:
    """Every member as CSV, PII masked unless the reader has ``pii.view``."""
    actor = page_actor(request)
    audience = _audience(request, slug)
    if audience is None:
        return _no_audience(request, slug)
    policy = policy_for_actor(actor)
    stamp = timezone.now().strftime("%Y%m%d-%H%M")
    response = StreamingHttpResponse(export.members_csv(audience, policy),
                                     content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = (
        f'attachment; filename="audience-{audience.slug}-{stamp}.csv"')
    response["Cache-Control"] = "no-store"
    return response


# --------------------------------------------------------------------------- why in / not in


def _headline(profile: Profile, account: Account, policy: Any) -> str:
    summary = select.summaries([profile], policy, account)[0]
    return next((v for values in summary["identifiers"].values() for v in values), "")


@require_GET
@strata_page("audiences.view")
def audience_why(request: HttpRequest, slug: str) -> HttpResponse:
    actor = page_actor(request)
    account = actor.account
    audience = _audience(request, slug)
    if audience is None:
        return _no_audience(request, slug)
    policy = policy_for_actor(actor)
    q = (request.GET.get("q") or "").strip()[:256]
    profile = find_profile(account, q) if q else None
    context: dict[str, Any] = {"audience": audience, "q": q, "profile": profile,
                               "policy": policy, "text": rule_text(audience.rule),
                               "can_profiles": actor.has("profiles.view")}
    if profile is not None:
        context.update(explain_profile(audience, profile, policy))
        context["headline"] = _headline(profile, account, policy)
    status = 404 if q and profile is None else 200
    return render_page(request, "audiences/why.html", context, section=SECTION,
                       title=f"Why · {audience.name}", status=status)


@require_GET
@strata_page("audiences.view")
def profile_audiences(request: HttpRequest, pk: int) -> HttpResponse:
    """A profile's audiences: stored membership and, for every audience, the rule's verdict
    now, each with its "why"."""
    actor = page_actor(request)
    account = actor.account
    profile = select.profile_by_id(account, pk)
    if profile is None:
        return _not_found(request, "No such profile", f"This account has no profile #{pk}.")
    policy = policy_for_actor(actor)
    now = timezone.now()
    ctx = CompileContext(schema=membership.rule_schema(account), now=now)
    member_of = {a.pk: a for a in membership.profile_audiences(account.pk, profile.pk)}
    since = dict(AudienceMembership.objects.filter(account_id=account.pk, profile=profile)
                 .values_list("audience_id", "since"))
    rows: list[dict[str, Any]] = []
    for audience in Audience.objects.filter(account=account, archived=False).order_by("name"):
        try:
            now_in: bool | None = compile_predicate(audience.rule, ctx)(
                profile_view(profile, audience.rule, now))
        except RuleError:
            now_in = None
        rows.append({"audience": audience, "member": audience.pk in member_of,
                     "since": since.get(audience.pk), "now_in": now_in})
    rows.sort(key=lambda r: (not r["member"], r["audience"].name.lower()))
    return render_page(request, "audiences/profile.html", {
        "profile": profile, "rows": rows, "headline": _headline(profile, account, policy),
        "policy": policy, "member_count": len(member_of),
        "can_profiles": actor.has("profiles.view"),
    }, section=SECTION, title=f"Audiences of profile #{profile.pk}")
