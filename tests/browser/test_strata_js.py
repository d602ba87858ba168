"""strata.js in headless Chromium, on a page of another origin, sending to the live server.

The page is served by a small http.server on 127.0.0.1 (another origin than the live server),
with the install snippet exactly as docs/tag.md gives it; what the tag sent is looked up in the
raw store.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from cdp_site.models import Account
from profiles.models import RawEvent
from tests.conftest import make_account
from tests.profiles.conftest import make_write_key

pytestmark = [
    pytest.mark.browser,
    # The live server sees only committed rows; seeded data is restored after each flush.
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

DOCS = Path(__file__).resolve().parents[2] / "docs" / "tag.md"
SNIPPET_HOST = "https://strata.example.com"


def install_snippet() -> str:
    """The loader line of the snippet in docs/tag.md: the documented snippet is the tested one."""
    block = re.search(r"```html\n<script>\n(.*?)</script>\n```", DOCS.read_text(), re.S)
    assert block, "docs/tag.md lost its install snippet"
    loader = next(line for line in block.group(1).splitlines() if line.startswith("!function(){"))
    assert SNIPPET_HOST + "/strata.js" in loader
    return loader


class SitePages:
    """A website on 127.0.0.1: pages registered by path, served by a thread."""

    def __init__(self) -> None:
        self.pages: dict[str, str] = {}
        pages = self.pages

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = pages.get(self.path.split("?")[0])
                if body is None:
                    self.send_error(404)
                    return
                data = body.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def add(self, path: str, strata_host: str, calls: str, title: str = "Shoes") -> str:
        loader = install_snippet().replace(SNIPPET_HOST, strata_host)
        self.pages[path.split("?")[0]] = (
            f"<!doctype html><html><head><title>{title}</title>"
            f"<script>\n{loader}\n{calls}\n</script></head>"
            f"<body><h1>{title}</h1><a id='next' href='/next'>next</a></body></html>"
        )
        return self.url + path


@pytest.fixture
def site() -> Iterator[SitePages]:
    pages = SitePages()
    pages.thread.start()
    yield pages
    pages.server.shutdown()
    pages.server.server_close()


@pytest.fixture
def acme(db: Any) -> Account:
    return make_account("Acme Shoes")


@pytest.fixture
def key(acme: Account) -> str:
    return make_write_key(acme)[1]


def pause(page: Any, seconds: float) -> None:
    """Wait while Playwright keeps dispatching (its sync API runs route handlers and event
    listeners only inside its own calls, never during time.sleep)."""
    page.wait_for_timeout(seconds * 1000)


def wait_for(page: Any, check: Callable[[], Any], timeout: float = 10.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        pause(page, 0.1)
    raise AssertionError(f"timed out waiting for {what or check}")


def stored(page: Any, account: Account, count: int, **filters: Any) -> list[RawEvent]:
    def check() -> list[RawEvent] | None:
        rows = list(RawEvent.objects.for_account(account).filter(**filters).order_by("event_at"))
        return rows if len(rows) >= count else None

    return wait_for(page, check, what=f"{count} stored events {filters}")


def visitor_cookie(page: Any, name: str = "seerid") -> str | None:
    return next((c["value"] for c in page.context.cookies() if c["name"] == name), None)


def collect_requests(page: Any, host: str) -> list[Any]:
    sent: list[Any] = []
    page.on("request", lambda r: sent.append(r) if r.url.startswith(host + "/v1/") else None)
    return sent


def test_page_view_and_custom_event_are_stored_with_the_cookie_visitor_id(
    browser: Any, site: SitePages, acme: Account, key: str, live_server: Any
) -> None:
    page = browser.page
    url = site.add("/shoes?utm_source=news&utm_campaign=spring", live_server.url, f"""
        strata.init({{writeKey: "{key}"}});
        strata.page({{section: "catalog"}});
        strata.send({{event: "add_to_cart", sku: "RUN-42", price: 89.5}});
    """)
    requests = collect_requests(page, live_server.url)
    page.goto(url)
    page.wait_for_function("window.strata && window.strata.loaded === true")

    rows = stored(page, acme, 2)
    uid = visitor_cookie(page)
    assert uid and re.fullmatch(r"[0-9a-f-]{36}", uid)
    assert page.evaluate("strata.getid()") == uid
    by_type = {row.type: row for row in rows}
    assert set(by_type) == {"page", "track"}
    assert all(row.anonymous_id == uid for row in rows)
    assert all(row.stream == "default" for row in rows)

    pv = by_type["page"].message
    props = pv["properties"]
    assert props["url"] == url
    assert props["_e"] == "pv"
    assert props["_uid"] == uid
    assert props["_sesstart"] == 1
    assert props["section"] == "catalog"
    assert props["utm_source"] == "news" and props["utm_campaign"] == "spring"
    assert props["_sz"] == "1280x800" or re.fullmatch(r"\d+x\d+", props["_sz"])
    assert props["_device"] == "desktop" and props["_nmob"] == "t" and "_mob" not in props
    assert isinstance(props["_tz"], int | float) and props["_ul"]
    assert props["_ref"] == "" and isinstance(props["_ts"], int) and props["_v"]
    assert pv["name"] == "Shoes"
    assert pv["context"]["library"]["name"] == "strata.js"
    assert pv["context"]["campaign"] == {"source": "news", "name": "spring"}
    assert pv["messageId"] and pv["timestamp"] and pv["sentAt"]

    track = by_type["track"]
    assert track.event == "add_to_cart"
    assert track.message["properties"]["sku"] == "RUN-42"
    assert track.message["properties"]["price"] == 89.5
    assert "_sesstart" not in track.message["properties"]  # only the session's first message

    # Both calls were made before the tag loaded (queued by the snippet) and left in one batch,
    # as text/plain (no preflight), the write key in the query string.
    assert len(requests) == 1
    assert requests[0].method == "POST"
    assert requests[0].headers["content-type"].startswith("text/plain")
    assert f"writeKey={key}" in requests[0].url

    # The next page keeps the visitor id and does not start a new session.
    site.add("/next", live_server.url, f'strata.init({{writeKey: "{key}"}}); strata.page();')
    page.click("#next")
    second = stored(page, acme, 3)[-1]
    assert second.anonymous_id == uid
    assert "_sesstart" not in second.message["properties"]
    assert second.message["properties"]["_ref"] == url
    browser.shot("page-with-tag")


def test_send_to_a_named_stream_and_a_configured_default_stream(
    browser: Any, site: SitePages, acme: Account, key: str, live_server: Any
) -> None:
    page = browser.page
    page.goto(site.add("/streams", live_server.url, f"""
        strata.init({{writeKey: "{key}"}});
        strata.send("crm_forms", {{event: "newsletter", email: "ada@example.com"}});
        strata.send({{event: "to_default"}});
    """))
    rows = {row.event: row for row in stored(page, acme, 2)}
    assert rows["newsletter"].stream == "crm_forms"
    assert rows["to_default"].stream == "default"
    uid = visitor_cookie(page)
    assert rows["newsletter"].anonymous_id == uid == rows["to_default"].anonymous_id
    assert rows["newsletter"].type == "track"

    site.add("/web", live_server.url,
             f'strata.init({{writeKey: "{key}", stream: "web"}}); strata.page();')
    page.goto(site.url + "/web")
    pv = stored(page, acme, 1, type="page")[0]
    assert pv.stream == "web" and pv.anonymous_id == uid


def test_identify_adds_the_user_id_to_later_messages(
    browser: Any, site: SitePages, acme: Account, key: str, live_server: Any
) -> None:
    page = browser.page
    page.goto(site.add("/account", live_server.url, f"""
        strata.init({{writeKey: "{key}"}});
        strata.identify({{userId: "u-77", email: "ada@example.com", plan: "pro"}});
        strata.send({{event: "login"}});
    """))
    rows = stored(page, acme, 2)
    uid = visitor_cookie(page)
    identify = next(row for row in rows if row.type == "identify")
    assert identify.user_id == "u-77" and identify.anonymous_id == uid
    assert identify.message["traits"] == {"email": "ada@example.com", "plan": "pro"}
    login = next(row for row in rows if row.type == "track")
    assert login.user_id == "u-77" and login.event == "login"


def test_consent_required_sends_nothing_and_sets_no_cookie_until_consent(
    browser: Any, site: SitePages, acme: Account, key: str, live_server: Any
) -> None:
    page = browser.page
    requests = collect_requests(page, live_server.url)
    page.goto(site.add("/consent", live_server.url, f"""
        strata.init({{writeKey: "{key}", consentRequired: true}});
        strata.page();
        strata.send({{event: "scrolled"}});
    """))
    page.wait_for_function("window.strata && window.strata.loaded === true")
    pause(page, 2.5)  # more than two flush intervals
    assert requests == []
    assert page.context.cookies() == []
    assert page.evaluate("strata.getid()") is None
    assert page.evaluate("localStorage.length") == 0
    assert not RawEvent.objects.for_account(acme).exists()

    page.evaluate("strata.consent(['analytics'])")
    rows = stored(page, acme, 3)
    uid = visitor_cookie(page)
    assert uid and page.evaluate("strata.getid()") == uid
    assert {row.type for row in rows} == {"page", "track"}
    assert {row.event for row in rows if row.type == "track"} == {"consent", "scrolled"}
    assert all(row.anonymous_id == uid for row in rows)
    consent = next(row for row in rows if row.event == "consent")
    assert consent.message["properties"]["purposes"] == {"analytics": True}
    assert visitor_cookie(page, "seerid_consent")

    # The choice holds on the next page: collection starts at once.
    site.add("/consent-2", live_server.url,
             f'strata.init({{writeKey: "{key}", consentRequired: true}}); strata.page();')
    page.goto(site.url + "/consent-2")
    assert stored(page, acme, 4)[-1].anonymous_id == uid

    # Withdrawing deletes the id cookie and stops collection.
    page.evaluate("strata.consent({analytics: false})")
    assert visitor_cookie(page) is None
    page.evaluate("strata.send({event: 'after_withdrawal'}); strata.flush()")
    pause(page, 1.5)
    assert not RawEvent.objects.for_account(acme).filter(event="after_withdrawal").exists()


def test_a_visitor_id_handed_over_by_the_page_replaces_the_cookie(
    browser: Any, site: SitePages, acme: Account, key: str, live_server: Any
) -> None:
    page = browser.page
    page.goto(site.add("/server-id", live_server.url, f"""
        strata.init({{writeKey: "{key}", visitorId: "srv-7f3a9c"}});
        strata.page();
        strata.getid(function (id) {{ window.gotId = id; }});
    """))
    rows = stored(page, acme, 1)
    assert rows[0].anonymous_id == "srv-7f3a9c"
    assert rows[0].message["properties"]["_uid"] == "srv-7f3a9c"
    assert page.evaluate("window.gotId") == "srv-7f3a9c"
    assert visitor_cookie(page) is None


def test_a_503_is_retried_after_backoff_and_the_event_is_stored_once(
    browser: Any, site: SitePages, acme: Account, key: str, live_server: Any
) -> None:
    page = browser.page
    attempts: list[float] = []

    def flaky(route: Any) -> None:
        attempts.append(time.monotonic())
        if len(attempts) == 1:
            route.fulfill(status=503, body='{"code":"unavailable","message":"try later"}',
                          headers={"Access-Control-Allow-Origin": "*",
                                   "Access-Control-Expose-Headers": "Retry-After",
                                   "Retry-After": "1", "Content-Type": "application/json"})
        else:
            route.continue_()

    page.route(live_server.url + "/v1/batch*", flaky)
    page.goto(site.add("/retry", live_server.url, f"""
        strata.init({{writeKey: "{key}"}});
        strata.send({{event: "checkout"}});
    """))
    rows = stored(page, acme, 1)
    assert len(attempts) == 2
    assert attempts[1] - attempts[0] >= 0.9  # Retry-After: 1 was honoured
    pause(page, 1.5)
    assert len(attempts) == 2
    assert RawEvent.objects.for_account(acme).count() == 1
    assert rows[0].event == "checkout"


def test_network_errors_are_retried_with_growing_backoff(
    browser: Any, site: SitePages, acme: Account, key: str, live_server: Any
) -> None:
    page = browser.page
    attempts: list[float] = []

    def unreachable_twice(route: Any) -> None:
        attempts.append(time.monotonic())
        if len(attempts) <= 2:
            route.abort("connectionrefused")
        else:
            route.continue_()

    page.route(live_server.url + "/v1/batch*", unreachable_twice)
    page.goto(site.add("/offline", live_server.url, f"""
        strata.init({{writeKey: "{key}"}});
        strata.send({{event: "offline_then_online"}});
    """))
    rows = stored(page, acme, 1)
    assert len(attempts) == 3 and len(rows) == 1
    first_wait, second_wait = attempts[1] - attempts[0], attempts[2] - attempts[1]
    assert 0.4 <= first_wait <= 1.6  # 0.5-1 s with jitter
    assert 0.9 <= second_wait <= 2.6  # 1-2 s with jitter


def test_retries_stop_after_five_tries(
    browser: Any, site: SitePages, acme: Account, key: str, live_server: Any
) -> None:
    page = browser.page
    attempts: list[str] = []

    def always_busy(route: Any) -> None:
        attempts.append(route.request.url)
        route.fulfill(status=429, body='{"code":"rate_limited","message":"slow down"}',
                      headers={"Access-Control-Allow-Origin": "*",
                               "Access-Control-Expose-Headers": "Retry-After",
                               "Retry-After": "0"})

    page.route(live_server.url + "/v1/batch*", always_busy)
    page.goto(site.add("/busy", live_server.url, f"""
        strata.init({{writeKey: "{key}"}});
        strata.send({{event: "dropped"}});
    """))
    wait_for(page, lambda: len(attempts) >= 5, what="five attempts")
    pause(page, 1.5)
    assert len(attempts) == 5


def test_a_400_is_not_retried(
    browser: Any, site: SitePages, acme: Account, key: str, live_server: Any
) -> None:
    page = browser.page
    attempts: list[str] = []

    def refuse(route: Any) -> None:
        attempts.append(route.request.url)
        route.fulfill(status=400, body='{"code":"invalid_json","message":"no"}',
                      headers={"Access-Control-Allow-Origin": "*"})

    page.route(live_server.url + "/v1/batch*", refuse)
    page.goto(site.add("/bad", live_server.url, f"""
        strata.init({{writeKey: "{key}"}});
        strata.send({{event: "never_stored"}});
    """))
    wait_for(page, lambda: attempts, what="the first attempt")
    pause(page, 2.5)
    assert len(attempts) == 1


def test_leaving_the_page_sends_the_queue_with_a_beacon(
    browser: Any, site: SitePages, acme: Account, key: str, live_server: Any
) -> None:
    page = browser.page
    page.goto(site.add("/leave", live_server.url, f"""
        strata.init({{writeKey: "{key}", flushInterval: 60000}});
        strata.send({{event: "read_article", seconds: 42}});
    """))
    page.wait_for_function("window.strata && window.strata.loaded === true")
    pause(page, 0.5)
    assert not RawEvent.objects.for_account(acme).exists()  # still waiting for the flush
    # Note each beacon in sessionStorage, which outlives the page on the same origin.
    page.evaluate("""() => {
        const send = navigator.sendBeacon.bind(navigator);
        navigator.sendBeacon = (url, body) => {
            sessionStorage.setItem("beacon", url);
            return send(url, body);
        };
    }""")
    site.pages["/blank"] = "<!doctype html><title>next</title>"
    page.goto(site.url + "/blank")
    row = stored(page, acme, 1)[0]
    assert row.event == "read_article"
    assert row.message["properties"]["seconds"] == 42
    beacon_url = page.evaluate("sessionStorage.getItem('beacon')")
    assert beacon_url == f"{live_server.url}/v1/batch?writeKey={key}"
