"""Consent where data leaves (DESIGN.md): exports send only profiles consented for every one
of the job's purposes. Kept in this one function so the privacy work (suppression lists,
consent hooks) can be wired in here alone."""

from __future__ import annotations

from collections.abc import Iterable

from profiles.models import ProfileConsent


def consented(account_id: int, profile_ids: Iterable[int], purposes: list[str]) -> set[int]:
    """The profiles among ``profile_ids`` that granted every purpose (all, when none)."""
    ids = set(profile_ids)
    if not purposes or not ids:
        return ids
    granted = (ProfileConsent.objects.filter(account_id=account_id, profile_id__in=ids,
                                             purpose__in=purposes, granted=True)
               .values_list("profile_id", "purpose"))
    seen: dict[int, set[str]] = {}
    for pid, purpose in granted:
        seen.setdefault(pid, set()).add(purpose)
    wanted = set(purposes)
    return {pid for pid, have in seen.items() if have >= wanted}
