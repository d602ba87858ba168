"""Partitions of the raw store: one per month of received_at, each split by account.

``ensure_partitions`` creates the current and next month (and each account's piece of them)
ahead of time; it runs in the migration, daily on a schedule, and when an account is created
(``on_account_created``, named in ``STRATA_ACCOUNT_CREATED_HOOKS``). Rows that arrive where no
partition exists yet land in DEFAULT partitions, so an insert never fails for want of one.

Retention (``drop_expired_partitions``, daily) works in whole months: an account's piece of a
month is dropped once the whole month is older than the account's ``retention_days``, which
costs no row-by-row delete. Rows of the account that sit in DEFAULT partitions (months created
after its rows arrived, or an account created after its month was) are deleted in batches by the
same boundary. Message ids older than 7 days are forgotten (``forget_old_message_ids``): collect
stores a message id again after 7 days anyway.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING

from django.db import OperationalError, connection, transaction

from cdp_site.models import Account
from profiles.models import AccountNotice

if TYPE_CHECKING:
    from cdp_site.models import Account

log = logging.getLogger(__name__)

TABLE = "profiles_rawevent"
DELETE_BATCH = 10_000
MESSAGE_ID_DAYS = 7
LOCK_TIMEOUT = "5s"  # dropping a partition locks the parent table: never wait long for it


def month_start(day: date) -> date:
    return date(day.year, day.month, 1)


def next_month(day: date) -> date:
    return date(day.year + (day.month == 12), day.month % 12 + 1, 1)


def month_table(start: date) -> str:
    return f"{TABLE}_p{start:%Y%m}"


def account_table(start: date, account_id: int) -> str:
    return f"{month_table(start)}_a{int(account_id)}"


def _existing_tables() -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname LIKE %s",
            [f"{TABLE}%"],
        )
        return {row[0] for row in cursor.fetchall()}


@transaction.atomic
def ensure_partitions(now: datetime | None = None, months_ahead: int = 1,
                      account_ids: list[int] | None = None) -> list[str]:
    """Create missing month and account partitions; return the names created."""
    today = (now or datetime.now(UTC)).date()
    if account_ids is None:
        account_ids = list(Account.objects.values_list("pk", flat=True))
    existing = _existing_tables()
    created: list[str] = []
    start = month_start(today)
    with connection.cursor() as cursor:
        for _ in range(months_ahead + 1):
            end = next_month(start)
            month = month_table(start)
            if month not in existing:
                _move_out_of_default(cursor, f"{TABLE}_default", month, start, end)
                created.append(month)
            for account_id in account_ids:
                name = account_table(start, account_id)
                if name not in existing:
                    _attach_account(cursor, month, name, account_id)
                    created.append(name)
            start = end
    return created


def _move_out_of_default(cursor, default: str, month: str, start: date, end: date) -> None:
    """Create a month partition; rows of that month already in the DEFAULT partition move in."""
    cursor.execute(f"LOCK TABLE {TABLE} IN SHARE ROW EXCLUSIVE MODE")
    cursor.execute(f"CREATE TABLE {month} (LIKE {TABLE} INCLUDING DEFAULTS) "
                   "PARTITION BY LIST (account_id)")
    cursor.execute(f"CREATE TABLE {month}_default PARTITION OF {month} DEFAULT")
    move = (  # table names are built from dates and ids above, never from input
        f"WITH moved AS (DELETE FROM {default} WHERE received_at >= %s AND received_at < %s "  # noqa: S608
        f"RETURNING *) INSERT INTO {month} SELECT * FROM moved"
    )
    cursor.execute(move, [start, end])
    cursor.execute(
        f"ALTER TABLE {TABLE} ATTACH PARTITION {month} FOR VALUES FROM (%s) TO (%s)",
        [start.isoformat(), end.isoformat()],
    )


def _attach_account(cursor, month: str, name: str, account_id: int) -> None:
    """Give an account its own piece of a month; its rows in the month's DEFAULT move in."""
    cursor.execute(f"LOCK TABLE {month} IN SHARE ROW EXCLUSIVE MODE")
    cursor.execute(f"CREATE TABLE {name} (LIKE {month} INCLUDING DEFAULTS)")
    move = (  # table names are built from dates and ids above, never from input
        f"WITH moved AS (DELETE FROM {month}_default WHERE account_id = %s RETURNING *) "  # noqa: S608
        f"INSERT INTO {name} SELECT * FROM moved"
    )
    cursor.execute(move, [account_id])
    cursor.execute(f"ALTER TABLE {month} ATTACH PARTITION {name} FOR VALUES IN ({int(account_id)})")


def on_account_created(account: Account) -> None:
    """Hook run when an account is created: give it its own piece of this and next month, so
    its events never sit in (and later move out of) a DEFAULT partition."""
    ensure_partitions(account_ids=[account.pk])


# Retention.

_MONTH = re.compile(rf"^{TABLE}_p(\d{{4}})(\d{{2}})$")
_ACCOUNT = re.compile(rf"^{TABLE}_p(\d{{4}})(\d{{2}})_a(\d+)$")


@dataclass
class _Month:
    table: str
    start: date
    end: date
    accounts: dict[int, str] = field(default_factory=dict)  # account id -> partition


def _months() -> list[_Month]:
    """The month partitions and their account partitions, oldest first."""
    months: dict[str, _Month] = {}
    tables = _existing_tables()
    for name in sorted(tables):
        found = _MONTH.match(name)
        if found:
            start = date(int(found[1]), int(found[2]), 1)
            months.setdefault(name, _Month(name, start, next_month(start)))
    for name in tables:
        found = _ACCOUNT.match(name)
        if found:
            month = months.get(month_table(date(int(found[1]), int(found[2]), 1)))
            if month is not None:
                month.accounts[int(found[3])] = name
    return sorted(months.values(), key=lambda month: month.start)


def retention_boundary(now: datetime, retention_days: int) -> date:
    """Rows received before this date are expired: the start of the month holding the cutoff
    (now - retention), so that only whole months are ever dropped."""
    cutoff = (now - timedelta(days=retention_days)).astimezone(UTC).date()
    return month_start(cutoff)


@dataclass
class Dropped:
    partitions: list[str] = field(default_factory=list)
    rows: int = 0

    def __bool__(self) -> bool:
        return bool(self.partitions or self.rows)


def _drop_table(name: str) -> bool:
    """Drop a partition in a short transaction; False when its lock could not be had soon
    (the next daily run tries again)."""
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
            cursor.execute(f"DROP TABLE IF EXISTS {name}")
    except OperationalError:
        log.warning("could not lock %s to drop it; will try again", name)
        return False
    return True


def _delete_in_batches(table: str, account_id: int, before: date, batch: int) -> int:
    """Delete an account's rows received before a date from a shared (DEFAULT) partition, one
    short transaction per batch so collection is never held up for long."""
    deleted = 0
    query = (  # table names are built from dates above, never from input
        f"DELETE FROM {table} WHERE ctid = ANY(ARRAY("  # noqa: S608
        f"SELECT ctid FROM {table} WHERE account_id = %s AND received_at < %s LIMIT %s))"
    )
    while True:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(query, [account_id, before, batch])
            count = cursor.rowcount
        deleted += count
        if count < batch:
            return deleted


def drop_expired_partitions(now: datetime | None = None,
                            batch_size: int = DELETE_BATCH) -> dict[str, int]:
    """Apply each account's retention to the raw store; tell its Admins what was dropped.
    Returns {account slug: partitions dropped + rows deleted} for accounts that lost data."""
    now = now or datetime.now(UTC)
    months = _months()
    report: dict[str, int] = {}
    boundaries: list[date] = []
    for account in Account.objects.order_by("pk"):
        boundary = retention_boundary(now, account.retention_days)
        boundaries.append(boundary)
        dropped = Dropped()
        for month in months:
            if month.end > boundary:
                break
            name = month.accounts.get(account.pk)
            if name is not None and _drop_table(name):
                dropped.partitions.append(name)
                del month.accounts[account.pk]
            dropped.rows += _delete_in_batches(f"{month.table}_default", account.pk, boundary,
                                               batch_size)
        dropped.rows += _delete_in_batches(f"{TABLE}_default", account.pk, boundary, batch_size)
        if dropped:
            _notify_dropped(account, boundary, dropped)
            report[account.slug] = len(dropped.partitions) + dropped.rows
    _drop_empty_months(months, min(boundaries, default=None))
    return report


def _drop_empty_months(months: list[_Month], boundary: date | None) -> None:
    """A month expired for every account, with no account partitions left and nothing in its
    DEFAULT partition, goes too."""
    if boundary is None:
        return
    for month in months:
        if month.end > boundary or month.accounts:
            continue
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT EXISTS (SELECT 1 FROM {month.table})")  # noqa: S608
            if cursor.fetchone()[0]:
                continue
        _drop_table(month.table)


def _notify_dropped(account: Account, boundary: date, dropped: Dropped) -> None:
    months = ", ".join(sorted(name.split("_p")[1][:6] for name in dropped.partitions))
    parts = []
    if dropped.partitions:
        parts.append(f"{len(dropped.partitions)} monthly partition(s) ({months})")
    if dropped.rows:
        parts.append(f"{dropped.rows:,} event(s) from shared partitions")
    AccountNotice.objects.create(
        account=account, kind="retention_dropped",
        message=f"Raw events received before {boundary:%Y-%m-%d} were dropped under the "
                f"{account.retention_days}-day retention: {' and '.join(parts)}.",
    )


def forget_old_message_ids(now: datetime | None = None, days: int = MESSAGE_ID_DAYS,
                           batch_size: int = 50_000) -> int:
    """Delete message ids first seen more than ``days`` ago, in batches."""
    before = (now or datetime.now(UTC)) - timedelta(days=days)
    deleted = 0
    while True:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                "DELETE FROM profiles_messageid WHERE id IN (SELECT id FROM profiles_messageid "
                "WHERE seen_at < %s LIMIT %s)",
                [before, batch_size],
            )
            count = cursor.rowcount
        deleted += count
        if count < batch_size:
            return deleted
