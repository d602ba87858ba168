"""The dashboard's audiences panel (a ``STRATA_DASHBOARD_PANELS_HOOKS`` entry): the largest
audiences with their size and its 7-day change, linking to each."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.urls import reverse

from audiences.models import Audience
from audiences.views import SPARK_DAYS, size_trends

if TYPE_CHECKING:
    from cdp_site.tenancy import Actor

PANEL_AUDIENCES = 5


def audiences_panel(actor: Actor) -> dict[str, Any] | None:
    if not actor.has("audiences.view"):
        return None
    listed = list(Audience.objects.filter(account=actor.account, archived=False)
                  .order_by("-size", "name")[:PANEL_AUDIENCES])
    trends = size_trends(actor.account, [a.pk for a in listed])
    rows = []
    for audience in listed:
        trend = trends.get(audience.pk, [])
        rows.append({"audience": audience, "url": reverse("audiences:detail",
                                                          args=[audience.slug]),
                     "change": trend[-1] - trend[0] if len(trend) > 1 else None})
    return {"template": "audiences/_dashboard_panel.html", "rows": rows, "days": SPARK_DAYS,
            "list_url": reverse("audiences:list")}
