"""Partitions of the raw store: creation (idempotent, moving rows out of DEFAULT), retention by
whole partitions per account, message-id cleanup, and partitions for new accounts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from django.db import connection
from django_q.models import Schedule

from cdp_site import accounts
from cdp_site.models import Account
from profiles import tasks
from profiles.collection.partitions import (
    TABLE,
    account_table,
    drop_expired_partitions,
    ensure_partitions,
    forget_old_message_ids,
    month_table,
    retention_boundary,
)
from profiles.models import AccountNotice, MessageId, RawEvent
from tests.conftest import make_account
from tests.profiles.raw_events import store, track


def at(year: int, month: int, day: int = 10) -> datetime:
    return datetime(year, month, day, 12, tzinfo=UTC)


def tables() -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT relname FROM pg_class WHERE relname LIKE %s", [f"{TABLE}_p%"])
        return {row[0] for row in cursor.fetchall()}


def homes(account: Account) -> dict[str, int]:
    """Which partition holds the account's rows, and how many."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT tableoid::regclass::text, count(*) FROM {TABLE} WHERE account_id = %s "  # noqa: S608
            "GROUP BY 1", [account.pk],
        )
        return dict(cursor.fetchall())


def test_ensure_partitions_is_idempotent(account: Account) -> None:
    now = at(2031, 3)
    created = ensure_partitions(now=now)
    start = now.date().replace(day=1)
    assert month_table(start) in created
    assert account_table(start, account.pk) in created
    assert ensure_partitions(now=now) == []


def test_a_new_month_moves_its_rows_out_of_the_default_partition(account: Account,
                                                                 other_account: Account) -> None:
    store(account, [track()] * 3, received_at=at(2031, 7))
    store(other_account, [track()], received_at=at(2031, 7))
    store(account, [track()], received_at=at(2031, 9))  # a month not created below
    assert homes(account) == {f"{TABLE}_default": 4}

    ensure_partitions(now=at(2031, 7), months_ahead=0, account_ids=[account.pk])

    assert homes(account) == {f"profiles_rawevent_p203107_a{account.pk}": 3,
                              f"{TABLE}_default": 1}
    assert homes(other_account) == {"profiles_rawevent_p203107_default": 1}
    assert RawEvent.objects.for_account(account).count() == 4


def test_an_account_partition_moves_its_rows_out_of_the_month_default(
        account: Account, other_account: Account) -> None:
    ensure_partitions(now=at(2032, 1), months_ahead=0, account_ids=[])
    store(account, [track()] * 2, received_at=at(2032, 1))
    store(other_account, [track()], received_at=at(2032, 1))
    assert homes(account) == {"profiles_rawevent_p203201_default": 2}

    created = ensure_partitions(now=at(2032, 1), months_ahead=0, account_ids=[account.pk])

    assert created == [account_table(at(2032, 1).date().replace(day=1), account.pk)]
    assert homes(account) == {created[0]: 2}
    assert homes(other_account) == {"profiles_rawevent_p203201_default": 1}


def test_retention_boundary_is_the_start_of_the_month_holding_the_cutoff() -> None:
    assert str(retention_boundary(at(2025, 6, 15), 30)) == "2025-05-01"
    assert str(retention_boundary(at(2025, 6, 15), 400)) == "2024-05-01"


def test_retention_drops_only_the_expired_accounts_partitions(db: None) -> None:
    short = make_account("Short")
    short.retention_days = 30
    short.save()
    long = make_account("Long")
    ensure_partitions(now=at(2025, 1), account_ids=[short.pk, long.pk])
    for account in (short, long):
        store(account, [track()] * 2, received_at=at(2025, 1))
        store(account, [track()], received_at=at(2025, 2))
    store(short, [track()], received_at=datetime.now(UTC) - timedelta(days=1))

    report = drop_expired_partitions(now=at(2025, 6, 15))

    assert report == {"short": 2}
    gone = {account_table(at(2025, m).date().replace(day=1), short.pk) for m in (1, 2)}
    kept = {account_table(at(2025, m).date().replace(day=1), long.pk) for m in (1, 2)}
    assert not gone & tables()
    assert kept <= tables()
    assert RawEvent.objects.for_account(short).count() == 1  # the recent one
    assert RawEvent.objects.for_account(long).count() == 3
    notices = list(AccountNotice.objects.for_account(short))
    assert [n.kind for n in notices] == ["retention_dropped"]
    assert "before 2025-05-01" in notices[0].message
    assert "2 monthly partition(s) (202501, 202502)" in notices[0].message
    assert not AccountNotice.objects.for_account(long).exists()
    assert drop_expired_partitions(now=at(2025, 6, 15)) == {}  # nothing left to drop


def test_retention_deletes_expired_rows_in_default_partitions_in_batches(db: None) -> None:
    short = make_account("Short")
    short.retention_days = 10
    short.save()
    long = make_account("Long")
    store(short, [track()] * 5, received_at=at(2021, 4))  # no partitions for 2021: DEFAULT
    store(long, [track()] * 2, received_at=at(2021, 4))
    ensure_partitions(now=at(2021, 8), months_ahead=0, account_ids=[])
    store(short, [track()] * 3, received_at=at(2021, 8))  # the month's DEFAULT
    store(short, [track()], received_at=datetime.now(UTC))

    report = drop_expired_partitions(now=at(2021, 10, 20), batch_size=2)

    assert report == {"short": 8}
    assert RawEvent.objects.for_account(short).count() == 1
    assert RawEvent.objects.for_account(long).count() == 2
    assert "8 event(s) from shared partitions" in (
        AccountNotice.objects.for_account(short).get().message
    )


def test_a_month_expired_for_every_account_goes_entirely(db: None) -> None:
    only = make_account("Only")
    only.retention_days = 1
    only.save()
    Account.objects.exclude(pk=only.pk).update(retention_days=1)
    ensure_partitions(now=at(2024, 2), months_ahead=0, account_ids=[only.pk])
    store(only, [track()], received_at=at(2024, 2))
    assert "profiles_rawevent_p202402" in tables()

    drop_expired_partitions(now=at(2024, 5))

    assert not {t for t in tables() if t.startswith("profiles_rawevent_p202402")}


def test_message_ids_older_than_seven_days_are_forgotten(account: Account) -> None:
    now = datetime.now(UTC)
    MessageId.objects.bulk_create(
        [MessageId(account=account, message_id=f"old-{n}", seen_at=now - timedelta(days=8))
         for n in range(5)]
        + [MessageId(account=account, message_id="new", seen_at=now - timedelta(days=6))]
    )
    assert forget_old_message_ids(now=now, batch_size=2) == 5
    assert list(MessageId.objects.for_account(account).values_list("message_id", flat=True)) == [
        "new"
    ]


def test_a_new_account_gets_its_partitions_once_committed(
        db: None, django_capture_on_commit_callbacks) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        account = accounts.create_account(name="Fresh", slug="fresh")
        assert account_table(datetime.now(UTC).date().replace(day=1), account.pk) not in tables()
    this_month = datetime.now(UTC).date().replace(day=1)
    assert account_table(this_month, account.pk) in tables()
    store(account, [track()], received_at=datetime.now(UTC))
    assert homes(account) == {account_table(this_month, account.pk): 1}


def test_a_failing_hook_does_not_undo_the_account(
        db: None, settings, django_capture_on_commit_callbacks) -> None:
    settings.STRATA_ACCOUNT_CREATED_HOOKS = ["tests.profiles.test_partitions.broken_hook"]
    with django_capture_on_commit_callbacks(execute=True):
        account = accounts.create_account(name="Fresh", slug="fresh")
    assert Account.objects.filter(pk=account.pk).exists()


def broken_hook(account: Account) -> None:
    raise RuntimeError("boom")


def test_the_daily_tasks_run(account: Account) -> None:
    assert isinstance(tasks.ensure_partitions(), list)
    assert tasks.drop_expired_raw_events() == {}
    assert tasks.forget_old_message_ids() == 0


def test_the_upkeep_is_scheduled(db: None) -> None:
    schedules = dict(Schedule.objects.filter(name__startswith="profiles.")
                     .values_list("name", "func"))
    assert schedules == {
        "profiles.ensure_partitions": "profiles.tasks.ensure_partitions",
        "profiles.drop_expired_raw_events": "profiles.tasks.drop_expired_raw_events",
        "profiles.forget_old_message_ids": "profiles.tasks.forget_old_message_ids",
        "profiles.aggregate_streams": "profiles.tasks.aggregate_streams",
        "profiles.refresh_aged_values": "profiles.tasks.refresh_aged_values",
        "profiles.correct_calculated_attributes": "profiles.tasks.correct_calculated_attributes",
        "profiles.apply_profile_retention": "profiles.tasks.apply_profile_retention",
    }
