"""Slugs made from names: letters transliterated to ASCII (``Ünïcødé`` → ``unicode``,
``Łódź`` → ``lodz``, ``東京`` → ``dongjing``, by anyascii), symbols and emoji dropped; a name
with nothing left (only emoji) gets a generated slug instead of a refusal."""

from __future__ import annotations

import secrets
import unicodedata

from anyascii import anyascii
from django.utils.text import slugify

SLUG_MAX = 100


def slug_from(text: str, *, max_length: int = SLUG_MAX) -> str:
    """The slug of a name or a typed slug; ``""`` when it has no letter or digit."""
    # symbols (emoji, ©, ™) and format characters (zero-width joiners, variation selectors)
    # go before transliteration: anyascii would spell an emoji as ":tada:"
    kept = "".join(ch for ch in text if unicodedata.category(ch)[0] not in "SC")
    return slugify(anyascii(kept))[:max_length].strip("-_")


def generated_slug(prefix: str) -> str:
    """A slug for a name without letters or digits: the prefix and eight random hex digits."""
    return f"{prefix}-{secrets.token_hex(4)}"
