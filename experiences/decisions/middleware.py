"""Decision requests skip the middleware that has nothing to do for them.

``POST /api/v1/decide`` and ``/ofrep/v1/…`` run on every page view of a site. Like the
collection paths they are CSRF-exempt and use no session, user, current account or flash
messages, and resolving them through the site's URLconf (dozens of patterns tried before
``experiences.urls``) cost a third of a decision's CPU. ``DecisionMiddleware``, listed right
after ``profiles.collection.middleware.CollectionMiddleware``, answers them the same way: resolved
with their own URLconf (``experiences.decisions.urls``), through the middleware listed after it
minus the five that have nothing to do; every other request goes down the full chain.
Nothing in ``cdp_site.urls`` before ``experiences.urls`` claims these prefixes.
"""

from __future__ import annotations

from profiles.collection.middleware import CollectionMiddleware

DECISION_URLCONF = "experiences.decisions.urls"
PREFIXES = ("/api/v1/decide", "/ofrep/")


class DecisionMiddleware(CollectionMiddleware):
    urlconf = DECISION_URLCONF
    prefixes = PREFIXES
