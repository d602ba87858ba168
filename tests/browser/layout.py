"""Layout checks the browser tests share: nothing sticks out sideways (wide tables scroll in
their card), waited for rather than read once (charts follow a resize a frame or two later),
and console errors collected."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import TimeoutError as PlaywrightTimeout

OVERFLOW = "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
FITS = "() => document.documentElement.scrollWidth <= document.documentElement.clientWidth"
# Everything past the right edge (inside scrollers too): what to look at when a page overflows.
PAST_THE_EDGE = """() => { const w = document.documentElement.clientWidth; const out = [];
  for (const e of document.querySelectorAll('body *')) { const r = e.getBoundingClientRect();
    if (r.right > w + 0.5) out.push(e.tagName + '.' + e.className + ' ' + Math.round(r.right));
  }
  return out.slice(0, 12); }"""


def sticking_out(page: Any, timeout_ms: int = 5_000) -> list[str]:
    """Empty when the page fits its window, else what lies past its right edge."""
    try:
        # a function, not an expression string: the pages' CSP forbids eval
        page.wait_for_function(FITS, timeout=timeout_ms)
        return []
    except PlaywrightTimeout:
        return page.evaluate(PAST_THE_EDGE) or ["the page"]


def watch_console(page: Any) -> list[str]:
    """Console errors and uncaught exceptions of the page, as they happen."""
    errors: list[str] = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    return errors
