"""The admin as Strata's console: any member may sign in; each page shows the current account
only, and what a user may do there follows their roles, not Django's is_staff flags."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar, cast

from django.contrib import admin
from django.contrib.auth.forms import AuthenticationForm
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponseBase
from django.template.response import TemplateResponse
from django.utils.cache import add_never_cache_headers

from cdp_site.models import Role
from cdp_site.tenancy import session_actor

_View = TypeVar("_View", bound=Callable[..., HttpResponseBase])


class MemberLoginForm(AuthenticationForm):
    """Admin sign-in for members: any active user (roles decide what they then see)."""


class StrataAdminSite(admin.AdminSite):
    site_header = "Strata"
    site_title = "Strata"
    index_title = "Console"
    site_url = None  # "/" only redirects back here
    enable_nav_sidebar = False  # the index is one click away; tables get the width
    login_form = MemberLoginForm

    def has_permission(self, request: HttpRequest) -> bool:
        user = request.user
        return bool(user.is_active and user.is_authenticated and session_actor(request))

    def each_context(self, request: HttpRequest) -> dict[str, Any]:
        context = super().each_context(request)
        actor = session_actor(request) if request.user.is_authenticated else None
        if actor is not None:
            context["strata_roles"] = list(
                Role.objects.filter(code__in=actor.role_codes).values_list("name", flat=True)
            )
            context["strata_is_account_admin"] = actor.has("admin.view")
        return context

    def index(self, request: HttpRequest, extra_context: dict[str, Any] | None = None
              ) -> TemplateResponse:
        actor = session_actor(request)
        context = {"title": actor.account.name} if actor is not None else {}
        return super().index(request, {**context, **(extra_context or {})})

    def admin_view(self, view: _View, cacheable: bool = False) -> _View:
        """Members whose roles refuse a page get a 403 inside the console, not a bare one."""
        wrapped = super().admin_view(view, cacheable)

        @wraps(wrapped)
        def inner(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
            try:
                return wrapped(request, *args, **kwargs)
            except PermissionDenied:
                if not self.has_permission(request):
                    raise
                response = self.permission_denied(request)
                add_never_cache_headers(response)
                return response

        return cast(_View, inner)  # wraps() keeps the view's name and attributes

    def permission_denied(self, request: HttpRequest) -> TemplateResponse:
        request.current_app = self.name
        return TemplateResponse(request, "admin/cdp_site/forbidden.html", {
            **self.each_context(request), "title": "Not allowed", "subtitle": None,
        }, status=403)
