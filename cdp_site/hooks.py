"""Settings hooks: how a lower app learns of a higher app's needs without importing it.

A hook setting (``STRATA_PROFILE_DELETED_HOOKS``, ``STRATA_AUDIENCE_USERS_HOOKS``...) lists
dotted paths of functions that apps downstream contribute; the app that owns the moment calls
``hooks(name)`` and runs them. The functions are imported once per process for each list of
paths (a test that overrides the setting gets its own list).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any

from django.conf import settings
from django.utils.module_loading import import_string


def hooks(name: str) -> list[Callable[..., Any]]:
    """The functions the setting ``name`` names, in order (none when it is unset)."""
    return _imported(tuple(getattr(settings, name, ())))


@cache
def _imported(paths: tuple[str, ...]) -> list[Callable[..., Any]]:
    return [import_string(path) for path in paths]
