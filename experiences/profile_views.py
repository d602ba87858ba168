"""A profile's experiences (``/experiences/profile/<id>/``, linked from the profile page): the
variant of every live experience the person would see now, with the reason (the decision
API's answer, written nowhere), and the experiences and variants they already got."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.urls import reverse
from django.views.decorators.http import require_GET

from cdp_site.shell import page_actor, render_page, strata_page
from experiences import preview
from profiles.selectors import profile_by_id

if TYPE_CHECKING:
    from django.http import HttpRequest, HttpResponse

SECTION = "experiences"


@require_GET
@strata_page("experiences.view")
def profile_experiences(request: HttpRequest, pk: int) -> HttpResponse:
    actor = page_actor(request)
    account = actor.account
    profile = profile_by_id(account, pk)
    if profile is None:
        return render_page(request, "cdp_site/404.html", {
            "heading": "No such profile", "message": f"This account has no profile #{pk}.",
            "back_url": reverse("experiences:list"), "back_label": "All experiences",
        }, section=SECTION, title="Not found", status=404)
    return render_page(request, "experiences/profile.html", {
        "profile": profile,
        "seen": preview.would_see(account, preview.visitor_of_profile(profile)),
        "got": preview.profile_experiences(account, profile),
        "can_profiles": actor.has("profiles.view"),
    }, section=SECTION, title=f"Experiences of profile #{profile.pk}")
