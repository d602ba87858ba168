"""Content-Security-Policy (#18 finding 12): every main page is served with the policy and
runs under it without a violation (inline scripts moved to static files or given the
request's nonce, no inline handlers), and its behaviours that were inline still work."""

from __future__ import annotations

from typing import Any

import pytest

from cdp_site.models import Account
from profiles.models import Stream
from tests.conftest import PASSWORD, make_account, make_user

pytestmark = [pytest.mark.browser,
              pytest.mark.django_db(transaction=True, serialized_rollback=True)]

PAGES = ["/dashboard/", "/streams/", "/streams/web/", "/streams/web/live/", "/failed-events/",
         "/usage/", "/profiles/", "/audiences/", "/audiences/new/", "/experiences/",
         "/schema/", "/schema/versions/", "/admin/", "/admin/cdp_site/accesstoken/",
         "/admin/cdp_site/accesstoken/add/"]


def problems(page: Any) -> list[str]:
    """Console errors and uncaught page errors, as they happen (a missing favicon aside)."""
    seen: list[str] = []
    page.on("console", lambda m: seen.append(m.text) if m.type == "error"
            and "favicon" not in (m.location or {}).get("url", "") else None)
    page.on("pageerror", lambda e: seen.append(f"page error: {e}"))
    return seen


def world() -> Account:
    account = make_account("Acme")
    Stream.objects.create(account=account, name="web")
    make_user("ada", account, roles=["admin"], is_staff=True)
    return account


def test_the_main_pages_run_under_the_policy_without_a_violation(browser: Any) -> None:
    world()
    seen = problems(browser.page)
    browser.log_in("ada", PASSWORD)
    for path in PAGES:
        response = browser.goto(path)
        assert response.status == 200, path
        policy = dict(directive.strip().split(" ", 1) for directive in
                      response.headers["content-security-policy"].split(";"))
        assert policy["script-src"].split()[0] == "'self'", path
        assert "unsafe" not in policy["script-src"]  # neither inline scripts nor eval
        browser.page.wait_for_load_state("networkidle")
        if path.endswith("/live/"):  # its poller runs under the policy too (no eval)
            with browser.page.expect_response(lambda r: "/live/events/" in r.url,
                                              timeout=60_000):
                pass
        assert seen == [], (path, seen)
    browser.shot("last-page")


def test_an_injected_inline_script_is_refused(browser: Any) -> None:
    world()
    seen = problems(browser.page)
    browser.log_in("ada", PASSWORD)
    browser.goto("/dashboard/")
    browser.page.evaluate("""() => {
        const s = document.createElement('script');
        s.textContent = 'window.injected = true';
        document.body.appendChild(s);
    }""")
    assert browser.page.evaluate("() => window.injected === undefined")
    assert any("Content Security Policy" in text for text in seen)


def test_confirm_and_autosubmit_work_without_inline_handlers(browser: Any) -> None:
    world()
    browser.log_in("ada", PASSWORD)
    browser.goto("/failed-events/")
    with browser.page.expect_navigation():
        browser.page.locator("select#failed-stream").select_option("web")
    assert "stream=web" in browser.page.url
    browser.shot("failed-events-filtered")
