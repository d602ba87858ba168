"""Collection requests skip the middleware that has nothing to do for them.

The public collection paths (``profiles.collection.urls``: ``/v1/*``, ``/beacon``,
``/sourceConfig``, ``/c``, ``/cid``, ``/collect/json``) are CSRF-exempt and use no session,
user, current account or flash messages, so those five middleware only cost them time (about
70 µs of CPU a request, half of what a bare Django view costs in all). Listed right after
``CorsMiddleware``, ``CollectionMiddleware`` answers a collection request itself, through the
middleware listed after it minus those five (``CommonMiddleware``: allowed hosts and
Content-Length; ``XFrameOptionsMiddleware``), so the answer is the same as before: the
middleware before it (security headers, static files, CORS) still wrap it. Any other request
goes down the full chain untouched.

The collection URLs are resolved with their own URLconf (a third of the cost of the site's,
which nests them three includes deep); nothing in ``cdp_site.urls`` before ``profiles.urls``
claims these prefixes. Under any other ROOT_URLCONF (bench/floor_app.py) the middleware steps
aside.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, cast

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured, MiddlewareNotUsed
from django.core.handlers.exception import convert_exception_to_response
from django.urls import Resolver404, get_resolver
from django.utils.module_loading import import_string

if TYPE_CHECKING:
    from django.http import HttpRequest, HttpResponse

Handler = Callable[["HttpRequest"], "HttpResponse"]

SITE_URLCONF = "cdp_site.urls"  # includes COLLECTION_URLCONF at the root (profiles.urls)
COLLECTION_URLCONF = "profiles.collection.urls"
PREFIXES = ("/v1/", "/beacon/", "/sourceConfig", "/c/", "/cid/", "/collect/json")
# Middleware with nothing to do on a collection request.
SKIPPED = frozenset({
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "cdp_site.tenancy.CurrentAccountMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "cdp_site.text.RefuseNulMiddleware",  # collection keeps a NUL as U+FFFD; decisions refuse it
    "axes.middleware.AxesMiddleware",  # no sign-in here
    "csp.middleware.CSPMiddleware",  # JSON answers, no page
})
# Hooks Django calls from the end of the chain, which a shortened chain would not.
_HOOKS = ("process_view", "process_exception", "process_template_response")


class CollectionMiddleware:
    # Subclasses give other public, CSRF-exempt, session-free paths the same fast path
    # (experiences.decisions.middleware: the decision APIs).
    urlconf = COLLECTION_URLCONF
    prefixes: tuple[str, ...] = PREFIXES

    def __init__(self, get_response: Handler) -> None:
        if settings.ROOT_URLCONF != SITE_URLCONF:
            raise MiddlewareNotUsed(f"ROOT_URLCONF is not {SITE_URLCONF}")
        self.get_response = get_response
        self.resolver = get_resolver(self.urlconf)
        listed = list(settings.MIDDLEWARE)
        me = f"{type(self).__module__}.{type(self).__name__}"
        # convert_exception_to_response keeps a handler sync (its stubs allow for async ones).
        handler = cast(Handler, convert_exception_to_response(self._view))
        for path in listed:
            if path in SKIPPED or path == me:
                continue
            if any(hasattr(import_string(path), hook) for hook in _HOOKS):
                raise ImproperlyConfigured(
                    f"{path} has a view, exception or template-response hook, which collection "
                    f"requests would skip: add it to {__name__}.SKIPPED or take "
                    f"{me} out of MIDDLEWARE.")
        for path in reversed(listed[listed.index(me) + 1:]):
            if path not in SKIPPED:
                handler = cast(Handler, convert_exception_to_response(import_string(path)(handler)))
        self.collect = handler

    def __call__(self, request: HttpRequest) -> HttpResponse:
        path = request.path_info
        if path.startswith(self.prefixes):
            try:
                match = self.resolver.resolve(path)
            except Resolver404:
                pass
            else:
                if getattr(match.func, "csrf_exempt", False):
                    request.resolver_match = match
                    return self.collect(request)
        return self.get_response(request)

    @staticmethod
    def _view(request: HttpRequest) -> HttpResponse:
        match = request.resolver_match
        assert match is not None
        return match.func(request, *match.args, **match.kwargs)
