"""Consent where data leaves (DESIGN.md): exports send only profiles that may be exported for
every one of the job's purposes. Kept in this one function; what "may" means is the privacy
code's (``profiles.privacy.exports.exportable``, issue #14): every purpose granted (no answer
means the account's default for the purpose, denied for a purpose it does not list), and no
identifier of the profile on the suppression list, asked at the moment of sending."""

from __future__ import annotations

from collections.abc import Iterable

from profiles.privacy.exports import exportable


def consented(account_id: int, profile_ids: Iterable[int], purposes: list[str]) -> set[int]:
    """The profiles among ``profile_ids`` that may be sent for the purposes (with none asked,
    all that are not suppressed)."""
    return exportable(account_id, profile_ids, purposes)
