"""PII masking (ROLES.md): values of fields marked PII are masked for anyone without
``pii.view`` in every page, API response and export, so the raw values never reach them.

Two layers:

- masking functions by kind, a small registry (email ``j***@example.com``, phone
  ``+1-***-**39``, any other text ``A***``), chosen by the shape of the value; numbers, booleans
  and dates of a PII field become ``***``; lists and maps are masked item by item;
- ``PiiPolicy``: which fields of an account are PII and whether this reader sees them
  unmasked. Pages, the profile API and (later) exports ask it for every field value and
  identifier they hand out: ``policy_for_actor(actor)`` for people and tokens,
  ``pii_policy(account, unmasked=...)`` for jobs.

A field counts as PII when the live schema or the draft marks it so: marking a field PII in
the draft protects it at once, before the next publish, and unmarking it only takes effect
when published.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import phonenumbers

from profiles.models import Field
from profiles.schema.compiled import live_schema

if TYPE_CHECKING:
    from cdp_site.models import Account
    from cdp_site.tenancy import Actor

__all__ = [
    "MASK",
    "PII_PERMISSION",
    "PiiPolicy",
    "mask_email",
    "mask_phone",
    "mask_text",
    "mask_value",
    "pii_fields",
    "pii_policy",
    "policy_for_actor",
]

MASK = "***"
PII_PERMISSION = "pii.view"

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")
_PHONE = re.compile(r"^\+?[\d\s().\-/]+$")
_PHONE_DIGITS = (7, 15)  # E.164 numbers have at most 15 digits; local ones at least 7


def looks_like_email(text: str) -> bool:
    return bool(_EMAIL.match(text.strip()))


def looks_like_phone(text: str) -> bool:
    stripped = text.strip()
    if not _PHONE.match(stripped):
        return False
    digits = sum(ch.isdigit() for ch in stripped)
    return _PHONE_DIGITS[0] <= digits <= _PHONE_DIGITS[1]


def mask_email(text: str) -> str:
    """``john.doe@example.com`` -> ``j***@example.com``: the first letter and the domain."""
    local, _at, domain = text.strip().rpartition("@")
    if not local or not domain:
        return mask_string(text)
    return f"{local[0]}{MASK}@{domain}"


def mask_phone(text: str) -> str:
    """``+1 555 123 4539`` -> ``+1-***-**39``: the country code (international numbers only)
    and the last two digits."""
    stripped = text.strip()
    digits = "".join(ch for ch in stripped if ch.isdigit())
    tail = digits[-2:]
    if stripped.startswith("+"):
        try:
            country = phonenumbers.parse(stripped).country_code
        except phonenumbers.NumberParseException:
            country = None
        if country:
            return f"+{country}-{MASK}-**{tail}"
    return f"{MASK}-**{tail}"


def mask_string(text: str) -> str:
    """``Alice`` -> ``A***``; strings of one or two characters give nothing away: ``***``."""
    stripped = text.strip()
    if len(stripped) < 3:
        return MASK
    return f"{stripped[0]}{MASK}"


# The kinds of text, tried in order; the first whose test matches masks the value.
TEXT_KINDS: list[tuple[str, Callable[[str], bool], Callable[[str], str]]] = [
    ("email", looks_like_email, mask_email),
    ("phone", looks_like_phone, mask_phone),
    ("string", lambda _text: True, mask_string),
]
_KIND_MASKERS = {kind: masker for kind, _test, masker in TEXT_KINDS}


def mask_text(text: str, kind: str | None = None) -> str:
    """Mask one text value, by ``kind`` when given, else by what the value looks like."""
    if kind is not None:
        return _KIND_MASKERS[kind](text)
    for _kind, test, masker in TEXT_KINDS:
        if test(text):
            return masker(text)
    return MASK  # pragma: no cover - the last kind matches everything


def mask_value(value: Any) -> Any:
    """Mask any field value: text by its kind, other scalars as ``***``, lists and maps item
    by item (map keys too: a PII map's keys may be emails). None stays None."""
    if value is None:
        return None
    if isinstance(value, str):
        return mask_text(value)
    if isinstance(value, list | tuple | set | frozenset):
        return [mask_value(item) for item in value]
    if isinstance(value, dict):
        return {mask_text(str(key)): mask_value(item) for key, item in value.items()}
    return MASK


# --------------------------------------------------------------------------- who sees what


def pii_fields(account: Account | int) -> frozenset[str]:
    """Names of the account's fields marked PII in the live schema or in the draft."""
    account_id = account if isinstance(account, int) else account.pk
    names = set(Field.objects.filter(account_id=account_id, is_pii=True)
                .values_list("name", flat=True))
    schema = live_schema(account_id)
    if schema is not None:
        names.update(name for name, spec in schema.fields.items() if spec.is_pii)
    return frozenset(names)


@dataclass(frozen=True)
class PiiPolicy:
    """What one reader may see of an account's PII fields."""

    pii_fields: frozenset[str]
    unmasked: bool

    @property
    def masking(self) -> bool:
        """Whether anything this reader sees may be masked."""
        return not self.unmasked and bool(self.pii_fields)

    def masks(self, field_name: str) -> bool:
        return not self.unmasked and field_name in self.pii_fields

    def value(self, field_name: str, value: Any) -> Any:
        """A field's value (or an identifier value) as this reader may see it."""
        return mask_value(value) if self.masks(field_name) else value

    def fields(self, values: dict[str, Any]) -> dict[str, Any]:
        """A map of field name -> value (profile fields, a profile event's properties)."""
        if not self.masking:
            return dict(values)
        return {name: self.value(name, value) for name, value in values.items()}

    def identifiers(self, grouped: dict[str, list[str]]) -> dict[str, list[str]]:
        """Identifier values grouped by field."""
        if not self.masking:
            return {name: list(values) for name, values in grouped.items()}
        return {name: [self.value(name, v) for v in values] for name, values in grouped.items()}


def pii_policy(account: Account | int, *, unmasked: bool) -> PiiPolicy:
    """The policy for a reader that is not a request's actor (an export job, a command)."""
    return PiiPolicy(pii_fields=pii_fields(account), unmasked=unmasked)


def policy_for_actor(actor: Actor) -> PiiPolicy:
    """The policy for a signed-in member or an access token: unmasked with ``pii.view``."""
    return pii_policy(actor.account, unmasked=actor.has(PII_PERMISSION))
