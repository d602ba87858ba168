"""The suppression list's writes: a person's identifier values go on it as hashes under one
subject (the hash of the identifier the request named); an unsuppress by any of them lifts the
subject. Collection reads the list (``profiles.collection.suppression``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from profiles.collection.suppression import forget_cached
from profiles.identifiers import identifier_bucket, identifier_hash
from profiles.models import PrivacyRequest, Suppression

if TYPE_CHECKING:
    from collections.abc import Iterable

    from cdp_site.models import Account

__all__ = ["suppress_values", "unsuppress_value"]


def suppress_values(account: Account, values: Iterable[str], subject: str,
                    request: PrivacyRequest | None = None) -> int:
    """Put the values on the list; how many were not on it yet."""
    listed = {identifier_hash(account.pk, value): identifier_bucket(account.pk, value)
              for value in values if value.strip()}
    hashes = sorted(listed)
    rows = [Suppression(account=account, value_hash=h, bucket=listed[h], subject=subject,
                        request=request) for h in hashes]
    before = Suppression.objects.for_account(account).filter(value_hash__in=hashes).count()
    Suppression.objects.bulk_create(rows, ignore_conflicts=True)
    forget_cached(account.pk)
    return len(hashes) - before


def unsuppress_value(account: Account, value: str) -> int:
    """Lift the value and every value suppressed with it; how many came off the list."""
    digest = identifier_hash(account.pk, value)
    rows = Suppression.objects.for_account(account)
    subjects = list(rows.filter(value_hash=digest).values_list("subject", flat=True))
    removed, _ = rows.filter(value_hash=digest).delete()
    if subjects:
        more, _ = rows.filter(subject__in=subjects).delete()
        removed += more
    forget_cached(account.pk)
    return removed
