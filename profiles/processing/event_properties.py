"""The event's own properties kept on its profile event (``ProfileEvent.own_properties``), so
that an audience's event condition can test them (``EVENT buy WHERE(amount > 0)``) although no
field maps them.

A property is named by its key path in the message, nested objects joined with dots, as the
stream explorer names raw keys: ``properties.amount``, ``context.page.url``, and for the
Lytics tag's flat messages simply ``amount``. The leaves of a Segment message's
``properties`` and ``traits`` objects are also kept under their bare names (``amount``) unless
the message has a top-level key of that name. Arrays are kept whole (a JSON array).

Bounded, so a profile event stays small whatever a client sends: at most ``MAX_KEYS`` keys and
about ``MAX_BYTES`` characters of compact JSON, ``properties``' leaves first, then
``traits``', then the rest of the message in its own order; a string longer than
``MAX_STRING`` characters (and an array whose JSON is) is left out rather than cut, so a
condition never matches half a value.
"""

from __future__ import annotations

import json
from typing import Any

MAX_KEYS = 100
MAX_BYTES = 4096
MAX_STRING = 512
# key paths of an event's properties: the Segment objects whose leaves are also kept bare
BARE_OBJECTS = ("properties", "traits")


def _size(key: str, value: Any) -> int:
    """About the characters the entry takes in compact JSON (``"key":value,``); -1 for a value
    too long to keep. Cheap on purpose: it runs for every key of every processed event."""
    kind = type(value)
    if kind is str:
        n = len(value)
        return -1 if n > MAX_STRING else len(key) + n + 6
    if kind is list:
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
        return -1 if len(text) > MAX_STRING else len(key) + len(text) + 4
    return len(key) + (len(str(value)) if kind in (int, float) else 5) + 4


class _Keeper:
    """Entries taken in order until ``MAX_KEYS`` keys or ``MAX_BYTES`` characters."""

    __slots__ = ("budget", "kept")

    def __init__(self) -> None:
        self.kept: dict[str, Any] = {}
        self.budget = MAX_BYTES

    def take(self, key: str, value: Any) -> bool:
        """Keep one entry if it fits; False once the keys are used up."""
        if key in self.kept:
            return True
        size = _size(key, value)
        if 0 <= size <= self.budget:
            self.kept[key] = value
            self.budget -= size
        return len(self.kept) < MAX_KEYS

    def leaves(self, value: dict[str, Any], prefix: str, bare: dict[str, Any] | None) -> bool:
        """Every leaf of ``value`` under ``prefix`` (and under its own path within ``value``
        when ``bare`` is the message: unless the message has that top-level key)."""
        for key, item in value.items():
            if type(item) is dict:
                if item and not self.leaves(item, f"{prefix}{key}.", None):
                    return False
                continue
            if not self.take(prefix + key, item):
                return False
            if bare is not None and key not in bare and not self.take(key, item):
                return False
        return True


def own_properties(message: dict[str, Any]) -> dict[str, Any]:
    """The message's properties by key path, within the bounds."""
    keeper = _Keeper()
    for name in BARE_OBJECTS:
        inner = message.get(name)
        if type(inner) is dict and not keeper.leaves(inner, f"{name}.", message):
            return keeper.kept
    keeper.leaves(message, "", None)
    return keeper.kept
