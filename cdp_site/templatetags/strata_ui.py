"""Small filters for Strata's pages: relative times, counts, JSON and sparklines."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from django import template
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe

register = template.Library()

_UNITS = (("year", 365 * 86400), ("month", 30 * 86400), ("week", 7 * 86400), ("day", 86400),
          ("hour", 3600), ("minute", 60))


def relative(moment: datetime | None, now: datetime | None = None) -> str:
    """"3 minutes ago", "2 days ago", "just now" (one unit, rounded down)."""
    if moment is None:
        return ""
    seconds = ((now or timezone.now()) - moment).total_seconds()
    future = seconds < 0
    seconds = abs(seconds)
    if seconds < 45:
        return "just now"
    for unit, size in _UNITS:
        if seconds >= size:
            count = int(seconds // size)
            text = f"{count} {unit}{'' if count == 1 else 's'}"
            return f"in {text}" if future else f"{text} ago"
    return "in 1 minute" if future else "1 minute ago"


@register.filter
def ago(moment: datetime | None) -> str:
    return relative(moment)


@register.simple_tag
def reltime(moment: datetime | None, empty: str = "never") -> SafeString:
    """A <time> with the relative text, the exact UTC time as its tooltip; app.js keeps the
    text fresh on pages that stay open."""
    if moment is None:
        return format_html('<span class="muted">{}</span>', empty)
    exact = moment.astimezone(UTC)
    return format_html(
        '<time datetime="{}" title="{}" data-relative>{}</time>',
        exact.isoformat(), exact.strftime("%Y-%m-%d %H:%M:%S UTC"), relative(moment),
    )


@register.filter
def number(value: Any) -> str:
    """1234567 -> "1,234,567"."""
    if value is None or value == "":
        return "\u2013"
    try:
        return f"{int(value):,}"
    except (TypeError, ValueError):
        return str(value)


@register.filter
def compact(value: Any) -> str:
    """1234 -> "1.2k", 3400000 -> "3.4M" (for tight spaces; the exact number goes in a title)."""
    try:
        n = float(value or 0)
    except (TypeError, ValueError):
        return str(value)
    for size, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= size:
            text = f"{n / size:.1f}".removesuffix(".0")
            return f"{text}{suffix}"
    return f"{int(n):,}"


@register.filter
def percent(value: Any, digits: int = 0) -> str:
    try:
        return f"{float(value) * 100:.{int(digits)}f} %"
    except (TypeError, ValueError):
        return "\u2013"


@register.filter
def pretty_json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=False, default=str)


@register.filter
def sample_text(value: Any) -> str:
    """A sample value as it was sent: strings bare, everything else as JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, default=str)


@register.simple_tag
def sparkline(values: list[int], width: int = 120, height: int = 28) -> SafeString:
    """An inline SVG line of counts (oldest first), with the area under it shaded."""
    if not values:
        return mark_safe("")
    top = max(values) or 1
    step = width / max(1, len(values) - 1)
    points = [
        (round(i * step, 1), round(height - 2 - (v / top) * (height - 4), 1))
        for i, v in enumerate(values)
    ]
    line = " ".join(f"{x},{y}" for x, y in points)
    area = f"0,{height} {line} {width},{height}"
    return format_html(
        '<svg class="sparkline" viewBox="0 0 {w} {h}" width="{w}" height="{h}" '
        'preserveAspectRatio="none" aria-hidden="true">'
        '<polygon points="{area}" class="sparkline-area"/>'
        '<polyline points="{line}" class="sparkline-line"/></svg>',
        w=width, h=height, area=area, line=line,
    )
