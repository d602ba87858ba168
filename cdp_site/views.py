"""Site pages: the home page, the account switcher and the error pages."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from cdp_site.api.errors import is_api_path, not_found_view, server_error_view
from cdp_site.shell import NAV
from cdp_site.tenancy import session_actor, switch_account


def home(request: HttpRequest) -> HttpResponse:
    """``/``: the first product page the member's roles open (the Dashboard, which every role
    may view), else the admin console; visitors sign in first and come back here."""
    if not request.user.is_authenticated:
        return redirect_to_login("/", reverse("admin:login"))
    actor = session_actor(request)
    if actor is not None:
        for item in NAV:
            if actor.has(item.permission):
                return HttpResponseRedirect(reverse(item.url_name))
    return HttpResponseRedirect(reverse("admin:index"))


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
    if is_api_path(request.path):
        return not_found_view(request, exception)
    return render(request, "404.html", status=404)


def server_error(request: HttpRequest) -> HttpResponse:
    if is_api_path(request.path):
        return server_error_view(request)
    return render(request, "500.html", status=500)
