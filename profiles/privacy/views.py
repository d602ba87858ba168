"""The privacy page (/privacy/, Admins and Data Managers: ``profiles.delete``): make a data
subject request, follow it (the list polls while one waits or runs), download an access
document. Thin views over profiles.privacy.requests, the same service the API uses."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.http import HttpResponse, HttpResponseRedirect, StreamingHttpResponse
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods

from cdp_site.shell import forbidden, page_actor, render_page, strata_page
from profiles.models import Field, PrivacyRequest
from profiles.privacy import requests as service
from profiles.privacy.access import access_document
from profiles.privacy.people import person_of_profiles

if TYPE_CHECKING:
    from django.http import HttpRequest

PERMISSION = "profiles.delete"
SHOWN = 50
UNFINISHED = (PrivacyRequest.State.RECEIVED, PrivacyRequest.State.RUNNING)


def _requests(request: HttpRequest) -> list[PrivacyRequest]:
    account = page_actor(request).account
    return list(PrivacyRequest.objects.for_account(account)
                .order_by("-created_at", "-id")[:SHOWN])


def _list_context(request: HttpRequest) -> dict[str, object]:
    rows = _requests(request)
    return {"requests": rows, "polling": any(r.state in UNFINISHED for r in rows)}


@require_http_methods(["GET", "POST"])
@strata_page(PERMISSION)
def privacy_requests(request: HttpRequest) -> HttpResponse:
    actor = page_actor(request)
    error = ""
    form = {"kind": "access", "field": "", "value": "", "suppress": True}
    if request.method == "POST":
        form = {"kind": request.POST.get("kind", ""), "field": request.POST.get("field", ""),
                "value": request.POST.get("value", ""),
                "suppress": request.POST.get("suppress") == "on"}
        try:
            service.create_request(actor, form["kind"], form["value"], form["field"],
                                   suppress=bool(form["suppress"]))
        except service.PrivacyRequestError as exc:
            error = exc.message
        else:
            return HttpResponseRedirect(reverse("privacy:requests"))
    fields = list(Field.objects.for_account(actor.account).filter(is_identifier=True)
                  .order_by("identifier_rank", "name").values_list("name", flat=True))
    return render_page(request, "profiles/privacy/requests.html", {
        **_list_context(request), "kinds": PrivacyRequest.Kind.choices, "fields": fields,
        "form": form, "error": error, "can_download": actor.has("pii.view"),
    }, section="privacy", title="Privacy requests", status=400 if error else 200)


@require_GET
@strata_page(PERMISSION)
def privacy_requests_list(request: HttpRequest) -> HttpResponse:
    """The list alone (what the page polls)."""
    return render_page(request, "profiles/privacy/_requests.html", {
        **_list_context(request), "can_download": page_actor(request).has("pii.view")})


@require_GET
@strata_page(PERMISSION)
def privacy_document(request: HttpRequest, pk: int) -> HttpResponse | StreamingHttpResponse:
    actor = page_actor(request)
    if not actor.has("pii.view"):
        return forbidden(request, "The access document needs PII view.")
    made = PrivacyRequest.objects.for_account(actor.account).filter(
        pk=pk, kind=PrivacyRequest.Kind.ACCESS, state=PrivacyRequest.State.DONE).first()
    if made is None:
        return render_page(request, "cdp_site/404.html", {
            "heading": "No such document", "message": "Only a done access request has one.",
            "back_url": reverse("privacy:requests"), "back_label": "Privacy requests",
        }, section="privacy", title="Not found", status=404)
    person = person_of_profiles(actor.account, made.result.get("profile_ids", []))
    response = StreamingHttpResponse(access_document(actor.account, made, person),
                                     content_type="application/json")
    response["Content-Disposition"] = f'attachment; filename="access-{made.pk}.json"'
    return response
