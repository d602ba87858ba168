"""The dashboard page (``/dashboard/``): the product home of every member, whatever their roles.
Thin: the figures come from ``profiles.explorer.dashboard``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.views.decorators.http import require_GET

from cdp_site.hooks import hooks
from cdp_site.shell import nav_for, page_actor, render_page, strata_page
from profiles.explorer import dashboard as board

if TYPE_CHECKING:
    from django.http import HttpRequest, HttpResponse

# What each section's link on the dashboard says (sections the member's roles open only).
SECTION_NOTES = {
    "streams": "Where events come in: volumes, raw keys, live events.",
    "failed": "Messages that could not be accepted or processed, with the reason.",
    "schema": "Fields, mappings and route rules; publish a new version.",
    "profiles": "Find a person by any identifier and see their unified profile.",
    "audiences": "Segments of profiles to target and export.",
    "usage": "Events per day and month against the account's quota.",
}


@require_GET
@strata_page("dashboard.view")
def dashboard(request: HttpRequest) -> HttpResponse:
    actor = page_actor(request)
    figures = board.dashboard(actor.account)
    sections = [
        {**item, "note": SECTION_NOTES.get(item["section"], "")}
        for item in nav_for(actor, "dashboard") if item["section"] != "dashboard"
    ]
    return render_page(request, "profiles/dashboard.html", {
        "board": figures,
        "lag_text": board.human_duration(figures.processing.lag_seconds),
        "lag_warning_seconds": board.LAG_WARNING_SECONDS,
        "worker_age": board.human_duration(figures.worker.get("age_seconds") or 0),
        "processor_age": board.human_duration(figures.processor.get("age_seconds") or 0),
        "throughput_chart": {
            "type": "line", "bucket": "hour", "timezone": "UTC", "unit": "events",
            "label": "Events processed",
            "starts": [m.isoformat() for m, _n in figures.throughput],
            "values": [n for _m, n in figures.throughput],
        },
        "sections": sections,
        # the apps above: audiences, experiences (STRATA_DASHBOARD_PANELS_HOOKS)
        "panels": [panel for hook in hooks("STRATA_DASHBOARD_PANELS_HOOKS")
                   if (panel := hook(actor)) is not None],
    }, section="dashboard", title="Dashboard")
