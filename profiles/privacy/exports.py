"""What an export (connectors, issue #13) must ask before it sends a profile anywhere
(issue #14): the profile granted every purpose the export serves (``ProfileConsent``; no
answer means the purpose's ``granted_by_default``, denied for a purpose the account does not
list), and none of its identifiers is on the suppression list. Asked at the
moment of sending, not when the membership changed: consent withdrawn in between stops the
export. ``exportable`` answers for a whole batch of profiles in two queries."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from profiles.collection.suppression import suppressed_hashes
from profiles.identifiers import identifier_hash
from profiles.models import ConsentPurpose, Identifier, ProfileConsent

__all__ = ["exportable", "may_export"]


def exportable(account_id: int, profile_ids: Iterable[int], purposes: Iterable[str]
               ) -> set[int]:
    """The profiles among ``profile_ids`` that may be sent for ``purposes``."""
    ids = set(profile_ids)
    needed = set(purposes)
    if not ids:
        return set()
    if needed:
        # what no answer means, per purpose (the account's purposes; denied when unlisted)
        assumed = set(ConsentPurpose.objects.filter(
            account_id=account_id, name__in=needed, granted_by_default=True)
            .values_list("name", flat=True))
        granted: dict[int, set[str]] = defaultdict(lambda: set(assumed))
        for pid, purpose, yes in ProfileConsent.objects.filter(
                account_id=account_id, profile_id__in=ids, purpose__in=needed
        ).values_list("profile_id", "purpose", "granted"):
            if yes:
                granted[pid].add(purpose)
            else:
                granted[pid].discard(purpose)
        ids = {pid for pid in ids if granted[pid] >= needed}
    hashes = suppressed_hashes(account_id)
    if hashes and ids:
        for pid, value in Identifier.objects.filter(
                account_id=account_id, profile_id__in=ids).values_list("profile_id", "value"):
            if pid in ids and identifier_hash(account_id, value) in hashes:
                ids.discard(pid)
    return ids


def may_export(account_id: int, profile_id: int, purposes: Iterable[str]) -> bool:
    return profile_id in exportable(account_id, [profile_id], purposes)
