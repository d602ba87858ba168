"""Django's debug pages for loopback clients only.

With DEBUG on (``make run``'s default) Django answers an error with a page of the stack, the
request and the settings (``DATABASE_URL`` included, password masked or not). That page is
for the developer at this machine: a client from any other address gets the plain error
page, as with DEBUG off. ``manage.py serve`` also refuses to listen beyond loopback with DEBUG
on (``loopback_bind``).
"""

from __future__ import annotations

import ipaddress

from django.conf import settings
from django.http import HttpRequest
from django.utils.safestring import SafeString
from django.views.debug import ExceptionReporter

from cdp_site.client import client_ip

PLAIN_HTML = ("<!doctype html><title>Server error</title><h1>Server error</h1>"
              "<p>Something went wrong on our side.</p>")
PLAIN_TEXT = "Server error: something went wrong on our side."


def is_loopback(address: str | None) -> bool:
    try:
        return address is not None and ipaddress.ip_address(address.strip("[]")).is_loopback
    except ValueError:
        return address == "localhost"


def loopback_bind(bind: str) -> bool:
    """Whether a gunicorn ``--bind`` (``host:port``, ``[::1]:port``, ``unix:path``) listens on
    this machine only."""
    if bind.startswith("unix:"):
        return True
    host = bind.rsplit(":", 1)[0] if ":" in bind.strip("[]") or bind.startswith("[") else bind
    return is_loopback(host)


class LoopbackExceptionReporter(ExceptionReporter):
    """``DEFAULT_EXCEPTION_REPORTER``: the technical 500 page for loopback clients only."""

    def _hidden(self) -> bool:
        request: HttpRequest | None = self.request
        return bool(settings.DEBUG) and request is not None and not is_loopback(
            client_ip(request))

    def get_traceback_html(self) -> SafeString:
        return SafeString(PLAIN_HTML) if self._hidden() else super().get_traceback_html()

    def get_traceback_text(self) -> SafeString:
        return SafeString(PLAIN_TEXT) if self._hidden() else super().get_traceback_text()
