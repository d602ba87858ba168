"""The event's own properties kept on its profile event (``ProfileEvent.own_properties``), so
that an audience's event condition can test them (``EVENT buy WHERE(amount > 0)``) although no
field maps them.

A property is named by its key path in the message, nested objects joined with dots, as the
stream explorer names raw keys: ``properties.amount``, ``context.page.url``, and for the
Lytics tag's flat messages simply ``amount``. The leaves of a Segment message's
``properties`` and ``traits`` objects are also kept under their bare names (``amount``) unless
the message has a top-level key of that name. Arrays are kept whole (a JSON array).

Bounded, so a profile event stays small whatever a client sends: at most ``MAX_KEYS`` keys and
``MAX_BYTES`` of compact JSON, ``properties``' leaves first, then ``traits``', then the rest of the
message in its own order; a string longer than ``MAX_STRING`` characters (and an array or
object whose JSON is) is left out rather than cut, so a condition never matches half a value.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

MAX_KEYS = 100
MAX_BYTES = 4096
MAX_STRING = 512
# key paths of an event's properties: the Segment objects whose leaves are also kept bare
BARE_OBJECTS = ("properties", "traits")


def _leaves(value: dict[str, Any], prefix: str) -> Iterator[tuple[str, Any]]:
    for key, item in value.items():
        if isinstance(item, dict):
            if item:
                yield from _leaves(item, f"{prefix}{key}.")
            continue
        yield prefix + str(key), item


def _size(key: str, value: Any) -> int | None:
    """The JSON bytes the entry takes, or None if the value is too long to keep."""
    if isinstance(value, str):
        if len(value) > MAX_STRING:
            return None
        text = json.dumps(value, ensure_ascii=False)
    elif isinstance(value, list):
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
        if len(text) > MAX_STRING:
            return None
    else:
        text = json.dumps(value, default=str)
    return len(json.dumps(key, ensure_ascii=False).encode()) + len(text.encode()) + 2  # : and ,


def _candidates(message: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    for name in BARE_OBJECTS:
        inner = message.get(name)
        if isinstance(inner, dict):
            for key, value in _leaves(inner, ""):
                yield f"{name}.{key}", value
                if key not in message:
                    yield key, value
    yield from _leaves(message, "")


def own_properties(message: dict[str, Any]) -> dict[str, Any]:
    """The message's properties by key path, within the bounds."""
    kept: dict[str, Any] = {}
    budget = MAX_BYTES
    for key, value in _candidates(message):
        if key in kept:
            continue
        size = _size(key, value)
        if size is None or size > budget:
            continue
        kept[key] = value
        budget -= size
        if len(kept) >= MAX_KEYS:
            break
    return kept
