"""One normaliser for identifier values (issue #14, item 2), used wherever a person is looked
up by what they gave us: profile search and the profile API, suppression and deletion.

Values are stored as received (for display) and compared normalised:

- an email (anything with an ``@``) is trimmed and lower-cased;
- a phone number (``+`` and digits, with spaces, dots, dashes or brackets) becomes E.164
  (``+15551234539``) with ``phonenumbers``; one it cannot read is kept trimmed;
- anything else (cookies, customer ids) is only trimmed.

``identifier_hash`` is what the suppression list keeps instead of the value: an HMAC-SHA256 of
the account and the normalised value under the server pepper, so the list itself does not
hold the person, and equal values of any field hash alike.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import zlib
from typing import TYPE_CHECKING

import phonenumbers
from django.conf import settings
from django.db.models import Q
from django.db.models.functions import Lower

if TYPE_CHECKING:
    from django.db.models import QuerySet

__all__ = ["BUCKET_MASK", "bucket_seed", "identifier_bucket", "identifier_hash", "matching_values",
           "normalize_identifier", "value_variants"]

_PHONE = re.compile(r"^\+[\d\s().\-]{6,30}$")
HASH_MAX_INPUT = 256  # identifiers are at most 256 characters (Identifier.value)
BUCKET_MASK = 0xFFFFFF  # identifier_bucket: 24 bits


def normalize_identifier(value: str) -> str:
    """The form two values of one person compare equal in (idempotent)."""
    text = value.strip()
    if "@" in text:
        return text.lower()
    if text[:1] == "+" and _PHONE.match(text):
        try:
            number = phonenumbers.parse(text, None)
        except phonenumbers.NumberParseException:
            return text
        if phonenumbers.is_possible_number(number):
            return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    return text


def identifier_hash(account_id: int, value: str) -> str:
    """The suppression list's key for a value (normalised first)."""
    text = normalize_identifier(value[:HASH_MAX_INPUT])
    return hmac.new(settings.TOKEN_PEPPER.encode(), f"{account_id}:{text}".encode(),
                    hashlib.sha256).hexdigest()


def identifier_bucket(account_id: int, value: str) -> int:
    """A 24-bit checksum of the normalised value under the pepper: the suppression check's
    prefilter (16.7 million buckets for billions of possible values: it cannot tell one
    person from the others sharing one)."""
    text = normalize_identifier(value[:HASH_MAX_INPUT])
    return zlib.crc32(text.encode(), bucket_seed(account_id)) & BUCKET_MASK


def bucket_seed(account_id: int) -> int:
    """The checksum after the pepper and the account: a bucket goes on from there."""
    return zlib.crc32(f"{account_id}:".encode(), zlib.crc32(settings.TOKEN_PEPPER.encode()))


def value_variants(value: str) -> list[str]:
    """The spellings to look a value up by, in order: as given (trimmed), then normalised."""
    text = value.strip()
    normal = normalize_identifier(text)
    return [text] if normal == text else [text, normal]


def matching_values(identifiers: QuerySet, value: str) -> tuple[QuerySet, Q]:
    """Identifier rows (annotated as needed) and the condition that finds ``value`` among them
    normalised: as given or normalised, and emails case-insensitively (the partial index
    ``identifier_email_lower`` serves that)."""
    condition = Q(value__in=value_variants(value))
    normal = normalize_identifier(value)
    if "@" in normal:
        identifiers = identifiers.annotate(lowered=Lower("value"))
        condition |= Q(value__contains="@", lowered=normal)
    return identifiers, condition
