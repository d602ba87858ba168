"""The admin as Strata's console: any member may sign in; each page shows the current account
only, and what a user may do there follows their roles, not Django's is_staff flags."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.auth.forms import AuthenticationForm
from django.http import HttpRequest

from cdp_site.tenancy import session_actor


class MemberLoginForm(AuthenticationForm):
    """Admin sign-in for members: any active user (roles decide what they then see)."""


class StrataAdminSite(admin.AdminSite):
    site_header = "Strata"
    site_title = "Strata"
    index_title = "Console"
    login_form = MemberLoginForm

    def has_permission(self, request: HttpRequest) -> bool:
        user = request.user
        return bool(user.is_active and user.is_authenticated and session_actor(request))

    def each_context(self, request: HttpRequest) -> dict[str, Any]:
        context = super().each_context(request)
        actor = session_actor(request) if request.user.is_authenticated else None
        if actor is not None:
            context["index_title"] = actor.account.name
            context["strata_roles"] = sorted(actor.role_codes)
        return context
