"""Filters for the profile pages: a field value as text, chips or pairs (always escaped)."""

from __future__ import annotations

import json
from typing import Any

from django import template
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

register = template.Library()

MAX_ITEMS = 50


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


@register.filter
def field_value(value: Any) -> SafeString:
    """A profile field's value: a list as chips, a map as key/value chips, else the text."""
    if value is None:
        return format_html('<span class="muted">&ndash;</span>')
    if isinstance(value, list):
        if not value:
            return format_html('<span class="muted">empty</span>')
        chips = format_html_join("", '<code class="chip">{}</code>',
                                 ((_scalar(v),) for v in value[:MAX_ITEMS]))
        more = (format_html('<span class="muted small">+{} more</span>', len(value) - MAX_ITEMS)
                if len(value) > MAX_ITEMS else "")
        return format_html('<span class="chips">{}{}</span>', chips, more)
    if isinstance(value, dict):
        if not value:
            return format_html('<span class="muted">empty</span>')
        pairs = format_html_join(
            "", '<code class="chip"><span class="chip-key">{}</span> {}</code>',
            ((k, _scalar(v)) for k, v in list(value.items())[:MAX_ITEMS]))
        return format_html('<span class="chips">{}</span>', pairs)
    return format_html('<span class="value-text">{}</span>', _scalar(value))


@register.filter
def filesize_bytes(value: Any) -> str:
    """1536 -> "1.5 KB" (merged state sizes)."""
    try:
        size = float(value or 0)
    except (TypeError, ValueError):
        return str(value)
    for unit in ("bytes", "KB", "MB"):
        if size < 1024 or unit == "MB":
            return f"{int(size)} bytes" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} MB"  # pragma: no cover
