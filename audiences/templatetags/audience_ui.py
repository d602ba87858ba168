"""Template helpers of the audience pages: permission checks and explained values."""

from __future__ import annotations

import json
from typing import Any

from django import template

register = template.Library()


@register.filter
def can(actor: Any, permission: str) -> bool:
    """``{% if actor|can:"audiences.view" %}``: whether the page's actor holds a permission."""
    return bool(actor is not None and actor.has(permission))


@register.filter
def step_value(step: Any) -> str:
    """What the profile has for an explained node, in words."""
    if step.kind == "event":
        n = step.value
        return f"{n:,} matching event{'s' if n != 1 else ''}" if n < 10_000 else \
            "10,000 or more matching events"
    if step.kind == "audience":
        return "a member" if step.value else "not a member"
    if step.kind == "consent":
        return "granted" if step.value else "not granted"
    if not step.has_value:
        return "no value"
    if isinstance(step.value, str):
        return step.value
    return json.dumps(step.value, ensure_ascii=False, default=str)
