"""Site pages: the account switcher and the error pages (the home page is cdp_site.pages.home)."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from cdp_site.api.errors import not_found_view, server_error_view
from cdp_site.tenancy import switch_account


@login_required
@require_POST
def switch_account_view(request: HttpRequest) -> HttpResponse:
    try:
        account_id = int(request.POST.get("account", ""))
    except ValueError:
        account_id = 0
    if switch_account(request, account_id) is None:
        return render(request, "cdp_site/no_such_account.html", status=404)
    target = request.POST.get("next") or "/admin/"
    if not url_has_allowed_host_and_scheme(target, {request.get_host()}, request.is_secure()):
        target = "/admin/"
    return HttpResponseRedirect(target)


def page_not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if request.path.startswith(("/api/", "/v1/", "/collect/", "/ofrep/", "/personalize/")):
        return not_found_view(request, exception)
    return render(request, "404.html", status=404)


def server_error(request: HttpRequest) -> HttpResponse:
    if request.path.startswith(("/api/", "/v1/", "/collect/", "/ofrep/", "/personalize/")):
        return server_error_view(request)
    return render(request, "500.html", status=500)
