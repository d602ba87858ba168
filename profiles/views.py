"""Profile pages (Admins, Data Managers, User Search): search by any identifier and one
profile's page (fields, identifiers, first/last seen, health, timeline, why its identifiers are
linked), and the GDPR delete (Admins, Data Managers).

Thin views over profiles.selectors and profiles.gdpr, the same functions the profile
API uses. Every value goes through the member's PII policy (profiles.masking) before it reaches
a template, so a member without ``pii.view`` never receives a raw PII value. Mounted at
/profiles/ by profiles.urls (namespace ``profiles``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from django.http import HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from cdp_site.shell import forbidden, page_actor, render_page, strata_page
from profiles import gdpr
from profiles import selectors as select
from profiles.masking import policy_for_actor

if TYPE_CHECKING:
    from django.http import HttpRequest

    from profiles.masking import PiiPolicy
    from profiles.models import Profile

RESULTS_PER_PAGE = 25
EVENTS_PER_PAGE = 25
IDENTITY_LOG_SHOWN = 100
IDENTIFIERS_FOLDED = 3  # a field's values shown before "n more"


def _offset(request: HttpRequest, name: str = "offset") -> int:
    try:
        return max(0, min(int(request.GET.get(name, 0)), 10**9))
    except ValueError:
        return 0


def _page_url(request: HttpRequest, **changes: Any) -> str:
    params = request.GET.copy()
    for key, value in changes.items():
        if value:
            params[key] = str(value)
        else:
            params.pop(key, None)
    query = params.urlencode()
    return request.path + (f"?{query}" if query else "")


def _not_found(request: HttpRequest, message: str) -> HttpResponse:
    return render_page(request, "cdp_site/404.html", {
        "heading": "No such profile", "message": message,
        "back_url": reverse("profiles:search"), "back_label": "Search profiles",
    }, section="profiles", title="Not found", status=404)


# --------------------------------------------------------------------------- search


@require_GET
@strata_page("profiles.view")
def profile_search(request: HttpRequest) -> HttpResponse:
    actor = page_actor(request)
    account = actor.account
    policy = policy_for_actor(actor)
    catalog = select.field_catalog(account)
    fields = select.identifier_fields(account, catalog)
    q = (request.GET.get("q") or "").strip()
    field = request.GET.get("field") or ""
    if field not in fields:
        field = ""
    offset = _offset(request)
    rows = list(select.search_profiles(account, q, policy, field_name=field or None,
                                       fields=fields)[offset:offset + RESULTS_PER_PAGE + 1])
    more = len(rows) > RESULTS_PER_PAGE
    results = select.summaries(rows[:RESULTS_PER_PAGE], policy, account, catalog)
    for result in results:
        result["identifier_groups"] = [
            {"field": name, "values": values[:IDENTIFIERS_FOLDED],
             "more": len(values) - IDENTIFIERS_FOLDED, "pii": name in policy.pii_fields}
            for name, values in result["identifiers"].items()]
    return render_page(request, "profiles/profile/search.html", {
        "q": q, "field": field, "fields": fields, "results": results, "policy": policy,
        "prefix_min": select.PREFIX_MIN,
        "prefix_note": policy.masking and any(policy.masks(f) for f in fields),
        "older_url": _page_url(request, offset=offset + RESULTS_PER_PAGE) if more else "",
        "newer_url": (_page_url(request, offset=max(0, offset - RESULTS_PER_PAGE))
                      if offset else ""),
        "offset": offset,
        "deleted": request.GET.get("deleted", "")[:20],
        "can_delete": actor.has("profiles.delete"),
    }, section="profiles", title="Profiles")


# --------------------------------------------------------------------------- one profile


@dataclass
class FieldRow:
    name: str
    type: str
    value: Any
    pii: bool
    masked: bool
    identifier_rank: int | None
    description: str


def _field_rows(profile: Profile, policy: PiiPolicy,
                catalog: dict[str, select.FieldInfo]) -> list[FieldRow]:
    document_values = select.profile_document_values(profile, policy, catalog)
    rows = []
    for name, value in document_values.items():
        info = catalog.get(name) or select.FieldInfo(name)
        rows.append(FieldRow(name, info.type, value, name in policy.pii_fields,
                             policy.masks(name), info.identifier_rank, info.description))
    return rows


@require_GET
@strata_page("profiles.view")
def profile_detail(request: HttpRequest, pk: int) -> HttpResponse:
    actor = page_actor(request)
    account = actor.account
    profile = select.profile_by_id(account, pk)
    if profile is None:
        return _not_found(request, f"This account has no profile #{pk}.")
    if profile.pk != pk:  # merged away: the survivor's page says so
        return HttpResponseRedirect(
            reverse("profiles:detail", args=[profile.pk]) + "?" + urlencode({"from": pk}))
    policy = policy_for_actor(actor)
    catalog = select.field_catalog(account)
    groups = select.identifiers_by_field(profile, catalog)
    identifiers: list[dict[str, Any]] = [
        {"field": name, "rank": (catalog.get(name) or select.FieldInfo(name)).identifier_rank,
         "pii": name in policy.pii_fields,
         "values": [{"value": policy.value(name, i.value), "first_seen": i.first_seen,
                     "last_seen": i.last_seen} for i in idents]}
        for name, idents in groups.items()]
    offset = _offset(request, "events")
    events = list(select.profile_events(profile)[offset:offset + EVENTS_PER_PAGE + 1])
    more = len(events) > EVENTS_PER_PAGE
    timeline = [select.event_document(e, policy, catalog) for e in events[:EVENTS_PER_PAGE]]
    story = select.identity_story(profile, policy, account, limit=IDENTITY_LOG_SHOWN,
                                  catalog=catalog)
    merged_from = request.GET.get("from", "")
    headline = next((v["value"] for group in identifiers for v in group["values"]), "")
    return render_page(request, "profiles/profile/detail.html", {
        "profile": profile,
        "headline": headline,
        "fields": _field_rows(profile, policy, catalog),
        "identifiers": identifiers,
        "health": select.health(profile, account),
        "timeline": timeline,
        "older_events_url": _page_url(request, events=offset + EVENTS_PER_PAGE) if more else "",
        "newer_events_url": (_page_url(request, events=max(0, offset - EVENTS_PER_PAGE))
                             if offset else ""),
        "events_offset": offset,
        "story": story,
        "compacted": [i for i in story.identifiers if not i.active],
        "story_kinds": _count_kinds(story),
        "policy": policy,
        "merged_from": merged_from if merged_from.isdigit() else "",
        "can_delete": actor.has("profiles.delete"),
        "calculated": select.calculated_rows(profile, policy, account),
        "consents": select.consent_document(profile, account),
    }, section="profiles", title=f"Profile #{profile.pk}")


def _count_kinds(story: select.IdentityStory) -> dict[str, int]:
    counts = {"merge": 0, "conflict": 0, "compaction": 0}
    for entry in story.log:
        counts[entry.kind] = counts.get(entry.kind, 0) + 1
    return counts


@require_POST
@strata_page("profiles.view")
def profile_delete(request: HttpRequest, pk: int) -> HttpResponse:
    """GDPR delete from the profile page (POST with CSRF; profiles.delete)."""
    actor = page_actor(request)
    if not actor.has("profiles.delete"):
        return forbidden(request)
    profile = select.profile_by_id(actor.account, pk)
    if profile is None:
        return _not_found(request, f"This account has no profile #{pk}.")
    if request.POST.get("confirm") != "yes":
        return HttpResponseRedirect(reverse("profiles:detail", args=[profile.pk]))
    gdpr.delete_profile(actor, profile, looked_up_by="id")
    return HttpResponseRedirect(reverse("profiles:search") + "?" + urlencode({"deleted": pk}))
