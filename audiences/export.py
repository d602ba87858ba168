"""An audience's members as CSV: one row per member (profile id, member since, first and last
seen, then every published field), streamed in profile id order with a server-side cursor.

Every value goes through the reader's ``PiiPolicy`` (profiles.masking): without ``pii.view``
PII fields come out masked, so raw values never leave the server. Text that a spreadsheet
would run as a formula (``=``, ``+``, ``-``, ``@``, tab, carriage return first) is prefixed
with ``'``.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from audiences.models import Audience, AudienceMembership
from profiles.masking import PiiPolicy
from profiles.selectors import field_catalog

FIXED_COLUMNS = ["profile_id", "member_since", "first_seen", "last_seen"]
CHUNK = 2000
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def columns(audience: Audience) -> list[str]:
    """The CSV header: the fixed columns, then the account's fields (identifiers first, by
    rank, then by name)."""
    catalog = field_catalog(audience.account)

    def order(name: str) -> tuple[int, int, str]:
        rank = catalog[name].identifier_rank
        return (0, rank, name) if rank is not None else (1, 0, name)

    return FIXED_COLUMNS + sorted(catalog, key=order)


def cell(value: Any) -> str:
    """One value as CSV text: lists and maps as JSON, dates as ISO 8601, formulas defused."""
    if value is None:
        return ""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, datetime):
        text = value.isoformat()
    elif isinstance(value, list | dict):
        text = json.dumps(value, ensure_ascii=False, sort_keys=True)
    else:
        text = str(value)
    if text.startswith(_FORMULA_START) and not _is_number(text):
        return "'" + text
    return text


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def member_rows(audience: Audience, policy: PiiPolicy, fields: list[str]
                ) -> Iterator[list[str]]:
    """The members as rows of ``fields`` values (masked for the reader)."""
    rows = (AudienceMembership.objects
            .filter(account_id=audience.account_id, audience=audience)
            .order_by("profile_id")
            .values_list("profile_id", "since", "profile__first_seen", "profile__last_seen",
                         "profile__field_values"))
    for pid, since, first, last, values in rows.iterator(chunk_size=CHUNK):
        values = values or {}
        yield [str(pid), cell(since), cell(first), cell(last),
               *(cell(policy.value(name, values.get(name))) for name in fields)]


def members_csv(audience: Audience, policy: PiiPolicy) -> Iterator[str]:
    """The CSV text, a chunk of lines at a time (for a streaming response)."""
    header = columns(audience)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    for n, row in enumerate(member_rows(audience, policy, header[len(FIXED_COLUMNS):]), 1):
        writer.writerow(row)
        if n % 500 == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()
