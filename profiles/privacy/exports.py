"""What an export (connectors, issue #13) must ask before it sends a profile anywhere
(issue #14): the profile granted every purpose the export serves (``ProfileConsent``; no
answer counts as denied), and none of its identifiers is on the suppression list. Asked at the
moment of sending, not when the membership changed: consent withdrawn in between stops the
export. ``exportable`` answers for a whole batch of profiles in two queries."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from profiles.collection.suppression import suppressed_hashes
from profiles.identifiers import identifier_hash
from profiles.models import Identifier, ProfileConsent

__all__ = ["exportable", "may_export"]


def exportable(account_id: int, profile_ids: Iterable[int], purposes: Iterable[str]
               ) -> set[int]:
    """The profiles among ``profile_ids`` that may be sent for ``purposes``."""
    ids = set(profile_ids)
    needed = set(purposes)
    if not ids:
        return set()
    if needed:
        granted: dict[int, set[str]] = defaultdict(set)
        for pid, purpose in ProfileConsent.objects.filter(
                account_id=account_id, profile_id__in=ids, granted=True,
                purpose__in=needed).values_list("profile_id", "purpose"):
            granted[pid].add(purpose)
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
