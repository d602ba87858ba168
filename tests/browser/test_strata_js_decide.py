"""strata.js decide() in headless Chromium: a personalized banner on a page of another origin
shows the visitor's variant with no flicker (the base content is never visible while the
decision is pending), falls back to the base after the timeout without swapping later, and
sends the impression that, with a goal event, becomes a conversion.

The page carries the anti-flicker style and the install snippet exactly as docs/tag.md gives
them; a script at the top of <head> logs the banner's state on every animation frame and DOM
change (``window.__log``: [ms, "absent" | "hidden" | visible variant keys])."""

from __future__ import annotations

import contextlib
import re
import urllib.request
from typing import Any

import pytest

from cdp_site.models import Account
from experiences import config
from experiences.models import Assignment, Conversion, Impression, Phase
from profiles.models import RawEvent
from profiles.schema.lytics import install_lytics_schema
from tests.browser.test_strata_js import (
    DOCS,
    SNIPPET_HOST,
    SitePages,
    install_snippet,
    pause,
    visitor_cookie,
    wait_for,
)
from tests.browser.test_strata_js import site as site  # the page server fixture
from tests.conftest import make_account, make_write_key
from tests.experiences.tracking_fixtures import ab_test
from tests.profiles.processing import run

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

LOGGER = """<script>
window.__log = [];
(function () {
  var last = null;
  function state() {
    var b = document.querySelector('[data-strata-experience]');
    if (!b) return 'absent';
    if (getComputedStyle(b).visibility !== 'visible') return 'hidden';
    return Array.prototype.filter.call(b.querySelectorAll('[data-strata-variant]'),
      function (e) { return e.checkVisibility({visibilityProperty: true}); })
      .map(function (e) { return e.getAttribute('data-strata-variant'); }).join('+');
  }
  function note() {
    var s = state();
    if (s !== last) { window.__log.push([Math.round(performance.now()), s]); last = s; }
  }
  (function tick() { note(); requestAnimationFrame(tick); })();
  new MutationObserver(note).observe(document, {subtree: true, childList: true, attributes: true});
})();
</script>"""

BANNER = """
<div data-strata-experience="hero" style="padding:24px;background:#f4efe6;font:20px sans-serif">
  <div data-strata-variant="control"><h2 data-strata-content="title">Book your table</h2>
    <p>Our classic menu, every evening.</p></div>
  <div data-strata-variant="bold" hidden><h2 data-strata-content="title">Hungry?</h2>
    <p>Tonight's chef special: book now!</p></div>
</div>"""


def anti_flicker_style() -> str:
    """The style docs/tag.md tells sites to put in <head>: the documented one is tested."""
    found = re.search(r"^<style>\[data-strata-experience\].*</style>$", DOCS.read_text(), re.M)
    assert found, "docs/tag.md lost its anti-flicker style"
    return found.group(0)


def banner_page(site: SitePages, strata: str, key: str, *, style: str, init: str = "") -> str:
    loader = install_snippet().replace(SNIPPET_HOST, strata)
    site.pages["/bistro"] = (
        f"<!doctype html><html><head><title>Bistro</title>{style}{LOGGER}"
        f"<script>\n{loader}\nstrata.init({{writeKey: \"{key}\"{init}}});\n"
        f"strata.decide();\nstrata.page();\n</script></head>"
        f"<body><h1>Bistro</h1>{BANNER}</body></html>")
    return site.url + "/bistro"


@pytest.fixture
def bistro(db: Any) -> tuple[Account, str]:
    """An account whose "hero" test gives every visitor the "bold" variant (custom weights
    0 / 100 %), with its title in the variant's content."""
    account = make_account("Bistro")
    install_lytics_schema(account)
    exp = ab_test(account, "hero", "h", goal_event="booked")
    Phase.objects.filter(experience=exp).update(weights={"control": 0.0, "bold": 1.0})
    exp.variants.filter(key="bold").update(content={"title": "Hungry? Tonight only"})
    exp.__class__.objects.filter(pk=exp.pk).update(version=2)
    config.invalidate()
    return account, make_write_key(account)[1]


@pytest.fixture(autouse=True)
def _warm(live_server: Any) -> None:
    """The live server's first answers are slow (connections, caches): not the tag's."""
    for path in ("/strata.js", "/api/v1/decide"):
        with contextlib.suppress(OSError):
            urllib.request.urlopen(live_server.url + path, timeout=30).read()


def long_wait() -> tuple[str, str]:
    """The documented style and a decideTimeout both at 10 s instead of 1 s: slow machines
    must not reach the timeout where a test needs the decision to be pending or early."""
    return anti_flicker_style().replace(" 1s ", " 10s "), ", decideTimeout: 10000"


class HeldDecisions:
    """Holds /api/v1/decide requests until released (the decision is "pending")."""

    def __init__(self, page: Any, strata: str) -> None:
        self.routes: list[Any] = []
        page.route(strata + "/api/v1/decide", lambda route: self.routes.append(route))

    def release(self) -> None:
        for route in self.routes:
            route.continue_()
        self.routes.clear()


def states(page: Any) -> list[str]:
    return [state for _ms, state in page.evaluate("window.__log")]


def test_the_banner_shows_the_visitors_variant_without_flicker(
        browser: Any, site: SitePages, bistro: tuple[Account, str], live_server: Any) -> None:
    account, key = bistro
    page = browser.page
    # a longer wait than the default, so the screenshot of the pending state fits in it
    style, init = long_wait()
    url = banner_page(site, live_server.url, key, style=style, init=init)
    held = HeldDecisions(page, live_server.url)
    page.goto(url)
    wait_for(page, lambda: held.routes, what="the decide request")
    pause(page, 0.3)
    browser.shot("pending")  # the banner's space is kept, nothing of it visible
    assert states(page)[-1] == "hidden", page.evaluate("window.__log")
    held.release()
    page.wait_for_selector("[data-strata-shown]")
    pause(page, 0.2)
    browser.shot("decided")

    log = states(page)
    assert log[-1] == "bold", log
    assert "control" not in log, log  # the base was never visible
    assert [s for s in log if s != "absent"] == ["hidden", "bold"], log
    assert page.inner_text("[data-strata-experience] [data-strata-variant=bold] h2") == \
        "Hungry? Tonight only"  # data-strata-content from the variant's content
    assert page.evaluate("strata.variant('hero')") == "bold"
    assert page.evaluate("strata.variant('h')") == "bold"
    assert page.evaluate("strata.variant('nope')") is None

    # the decision was stored for the cookie's visitor; the impression follows it
    uid = visitor_cookie(page)
    assert Assignment.objects.get(experience__account=account, visitor=uid).variant.key == "bold"
    page.evaluate("strata.flush()")
    viewed = wait_for(page, lambda: RawEvent.objects.filter(
        account=account, event="Experiment Viewed").first(), what="the impression")
    assert viewed.anonymous_id == uid
    assert viewed.message["properties"]["experiment_id"] == "hero"
    assert viewed.message["properties"]["variation_id"] == "bold"
    page.evaluate("strata.impression('hero'); strata.send({event: 'booked', price: 20});"
                  "strata.flush()")
    wait_for(page, lambda: RawEvent.objects.filter(account=account, event="booked").exists(),
             what="the goal event")
    assert RawEvent.objects.filter(account=account, event="Experiment Viewed").count() == 1
    run(account)
    impression = Impression.objects.get(experience__account=account)
    assert (impression.visitor, impression.variant.key, impression.count) == (uid, "bold", 1)
    conversion = Conversion.objects.get(experience__account=account)
    assert (conversion.visitor, conversion.variant.key) == (uid, "bold")


def test_a_late_decision_leaves_the_base_content_and_sends_no_impression(
        browser: Any, site: SitePages, bistro: tuple[Account, str], live_server: Any) -> None:
    account, key = bistro
    page = browser.page
    url = banner_page(site, live_server.url, key, style=anti_flicker_style())
    held = HeldDecisions(page, live_server.url)
    page.goto(url)
    wait_for(page, lambda: held.routes, what="the decide request")
    page.wait_for_selector("[data-strata-shown]", timeout=3000)  # the 1 s timeout
    browser.shot("timed-out")
    held.release()
    wait_for(page, lambda: page.evaluate("strata.variant('hero')") == "bold",
             what="the late decision")
    pause(page, 0.3)
    browser.shot("after-late-decision")
    log = page.evaluate("window.__log")
    assert [s for _ms, s in log if s != "absent"] == ["hidden", "control"], log
    shown_at = next(ms for ms, s in log if s == "control")
    assert shown_at >= 900, log  # hidden for the whole wait
    page.evaluate("strata.flush()")
    pause(page, 0.5)
    assert not RawEvent.objects.filter(account=account, event="Experiment Viewed").exists()


def test_a_failed_decision_shows_the_base_at_once(
        browser: Any, site: SitePages, bistro: tuple[Account, str], live_server: Any) -> None:
    page = browser.page
    style, init = long_wait()  # a long wait that must not be used
    url = banner_page(site, live_server.url, "swk_unknown_key", style=style, init=init)
    page.goto(url)
    page.wait_for_selector("[data-strata-shown]", timeout=12_000)
    log = page.evaluate("window.__log")
    assert [s for _ms, s in log if s != "absent"] == ["hidden", "control"], log
    assert log[-1][0] < 5000, log  # the 401 answer, not the 10 s wait
    assert page.evaluate("strata.decide()") is None  # the Promise resolves to null
