"""Partitions of the raw store: one per month of received_at, each split by account.

``ensure_partitions`` creates the current and next month (and each account's piece of them)
ahead of time; it runs in the migration, daily on a schedule, and when an account is created.
Rows that arrive where no partition exists yet land in DEFAULT partitions, so an insert never
fails for want of one.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

from django.db import connection, transaction

TABLE = "profiles_rawevent"


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
    from cdp_site.models import Account

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
