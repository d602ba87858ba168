"""The dashboard's experiences panel (a ``STRATA_DASHBOARD_PANELS_HOOKS`` entry): the active
experiences, each with its leader and the chance it is best, linking to its page."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.urls import reverse

from experiences import results
from experiences.models import Experience

if TYPE_CHECKING:
    from cdp_site.tenancy import Actor

PANEL_EXPERIENCES = 5


def active_experiences_panel(actor: Actor) -> dict[str, Any] | None:
    if not actor.has("experiences.view"):
        return None
    active = Experience.objects.filter(account=actor.account, status=Experience.Status.ACTIVE)
    rows = []
    for exp in active.order_by("-activated_at", "-id")[:PANEL_EXPERIENCES]:
        answer = results.phase_results(exp) if exp.phase else None
        ranked = [row for row in (answer or {}).get("variants", [])
                  if row.get("chance_to_be_best") is not None and row["visible"]]
        leader = max(ranked, key=lambda row: row["chance_to_be_best"], default=None)
        rows.append({"exp": exp, "url": reverse("experiences:detail", args=[exp.key]),
                     "leader": leader["name"] if leader else None,
                     "chance": leader["chance_to_be_best"] if leader else None,
                     "segmented": exp.type == Experience.Type.SEGMENTED})
    return {"template": "experiences/_dashboard_panel.html", "rows": rows,
            "more": max(active.count() - len(rows), 0),
            "list_url": reverse("experiences:list") + "?status=active"}
