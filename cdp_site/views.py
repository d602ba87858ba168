"""Site pages: the home page, the account switcher, accepting an invitation and the error
pages."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.contrib.auth.password_validation import password_validators_help_text_html
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from cdp_site import invitations
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


class NewMemberPasswordForm(forms.Form):
    password1 = forms.CharField(label="Password", strip=False, widget=forms.PasswordInput(
        attrs={"autocomplete": "new-password"}), help_text=password_validators_help_text_html())
    password2 = forms.CharField(label="Password again", strip=False, widget=forms.PasswordInput(
        attrs={"autocomplete": "new-password"}))

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if cleaned.get("password1") != cleaned.get("password2"):
            raise forms.ValidationError("The two passwords differ.")
        return cleaned


@never_cache
def accept_invitation(request: HttpRequest, secret: str) -> HttpResponse:
    """``/invitations/<secret>/``, the emailed link: the invited address's user signs in and
    joins; a person without one chooses a password (the site's validators) and joins."""
    invitation = invitations.pending(secret)
    if invitation is None:
        return render(request, "cdp_site/invitation.html", {"mode": "invalid"}, status=404)
    context: dict[str, Any] = {
        "invitation": invitation, "roles": [role.name for role in invitation.roles.all()],
        "title": f"Join {invitation.account.name}",
    }
    existing = invitations.invited_user(invitation)
    if existing is not None:
        if request.user.pk != existing.pk:
            return render(request, "cdp_site/invitation.html", {
                **context, "mode": "sign_in", "other_user": request.user.is_authenticated,
                "sign_in_url": f"{reverse('admin:login')}?next={request.path}",
            })
        if request.method == "POST":
            invitations.accept(invitation, existing)
            return _joined(request, invitation.account.pk)
        return render(request, "cdp_site/invitation.html", {**context, "mode": "join"})
    form = NewMemberPasswordForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            user, _membership = invitations.accept_as_new_user(
                invitation, form.cleaned_data["password1"])
        except ValidationError as refused:
            form.add_error("password1", refused)
        else:
            login(request, user, backend="django.contrib.auth.backends.ModelBackend")
            return _joined(request, invitation.account.pk)
    return render(request, "cdp_site/invitation.html", {**context, "mode": "new", "form": form})


def _joined(request: HttpRequest, account_id: int) -> HttpResponse:
    switch_account(request, account_id)
    return HttpResponseRedirect(reverse("home"))
