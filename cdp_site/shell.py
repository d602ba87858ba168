"""The page shell of Strata's product pages (streams now; profiles, audiences, experiences
later): who may open a page, the navigation their roles allow, and rendering inside
``templates/strata/base.html``.

A page view is decorated with ``@strata_page("schema.view")``: anonymous visitors go to the
sign-in page (and come back), members whose roles lack the permission get the 403 page, and
the view finds the actor with ``page_actor(request)``. Views render with ``render_page``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpResponse, HttpResponseBase
from django.shortcuts import render
from django.urls import reverse
from django.utils.cache import add_never_cache_headers

from cdp_site.models import Role
from cdp_site.tenancy import Actor, session_actor

if TYPE_CHECKING:
    from django.http import HttpRequest

PageView = Callable[..., HttpResponseBase]

# strata_page leaves the actor it admitted on the request under this name (HttpRequest does not
# declare it: page_actor is the typed way to read it).
_PAGE_ACTOR_ATTR = "actor"


@dataclass(frozen=True)
class NavItem:
    """One entry of the top bar: a section, the URL name it opens, the permission it needs."""

    section: str
    label: str
    url_name: str
    permission: str


# Later areas add their sections here (Profiles, Audiences, Experiences), in display order.
NAV: list[NavItem] = [
    NavItem("dashboard", "Dashboard", "dashboard:home", "dashboard.view"),  # every role
    NavItem("streams", "Streams", "streams:list", "schema.view"),
    NavItem("failed", "Failed events", "explorer-failed-events", "schema.view"),
    NavItem("schema", "Schema", "schema:overview", "schema.view"),
    NavItem("profiles", "Profiles", "profiles:search", "profiles.view"),
    NavItem("privacy", "Privacy", "privacy:requests", "profiles.delete"),
    NavItem("audiences", "Audiences", "audiences:list", "audiences.view"),
    NavItem("experiences", "Experiences", "experiences:list", "experiences.view"),
    NavItem("connectors", "Jobs", "connectors:jobs", "jobs.view"),
    NavItem("usage", "Usage", "explorer-usage", "admin.view"),
]


def nav_for(actor: Actor, active: str) -> list[dict[str, Any]]:
    return [
        {"label": item.label, "url": reverse(item.url_name), "active": item.section == active,
         "section": item.section}
        for item in NAV
        if actor.has(item.permission)
    ]


def render_page(
    request: HttpRequest,
    template: str,
    context: dict[str, Any] | None = None,
    *,
    section: str = "",
    title: str = "",
    status: int = 200,
) -> HttpResponse:
    """Render a page inside the shell, with the actor's navigation and roles."""
    actor: Actor | None = getattr(request, _PAGE_ACTOR_ATTR, None) or session_actor(request)
    shell: dict[str, Any] = {"page_title": title, "section": section, "actor": actor}
    if actor is not None:
        shell["nav"] = nav_for(actor, section)
        shell["strata_roles"] = list(
            Role.objects.filter(code__in=actor.role_codes).values_list("name", flat=True)
        )
    response = render(request, template, {**shell, **(context or {})}, status=status)
    add_never_cache_headers(response)  # account data: never from a shared or back cache
    return response


def forbidden(request: HttpRequest, message: str = "") -> HttpResponse:
    return render_page(request, "cdp_site/403.html", {"message": message},
                       title="Not allowed", status=403)


def strata_page(permission: str | None = None) -> Callable[[PageView], PageView]:
    """Sign-in required; the current account's actor must hold ``permission``."""

    def decorate(view: PageView) -> PageView:
        @wraps(view)
        def inner(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
            if not request.user.is_authenticated:
                if request.headers.get("HX-Request") == "true":
                    # a fragment request (polling, search) after the session ended: the whole
                    # page goes to sign-in, not the sign-in form into a table
                    current = urlsplit(request.headers.get("HX-Current-URL", ""))
                    page = current.path + (f"?{current.query}" if current.query else "")
                    target = redirect_to_login(page or "/", reverse("admin:login"))["Location"]
                    return HttpResponse(status=204, headers={"HX-Redirect": target})
                return redirect_to_login(request.get_full_path(), reverse("admin:login"))
            actor = session_actor(request)
            if actor is None:
                return forbidden(request, "You do not belong to any account yet.")
            if permission is not None and not actor.has(permission):
                return forbidden(request)
            setattr(request, _PAGE_ACTOR_ATTR, actor)
            return view(request, *args, **kwargs)

        return inner

    return decorate


def page_actor(request: HttpRequest) -> Actor:
    """The actor ``strata_page`` admitted to this view."""
    actor = getattr(request, _PAGE_ACTOR_ATTR, None)
    if not isinstance(actor, Actor):
        raise ImproperlyConfigured("page_actor is for views decorated with strata_page")
    return actor
