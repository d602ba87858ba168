"""A full computation and the real-time step at once: a batch that commits between the
computation's selection and its diff (the selection then stale) keeps its real-time result,
and the computation writes no false entry or exit. The batch runs in another thread (its own
connection) from compute_pass's hook point between the two statements, so the race is the
same every run."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.db import connection

from audiences import editing, membership
from audiences.models import Audience
from cdp_site.models import Account
from tests.audiences.live import changes, lytics_account, members, process, profile_of
from tests.conftest import make_account

committing = pytest.mark.django_db(transaction=True, serialized_rollback=True)


def crm_record(email: str, tier: str) -> dict[str, Any]:
    return {"origin": {"email": email}, "response": {"loyalty_tier": tier}}


@pytest.fixture
def crm(db: None) -> Account:
    """These tests commit: tests/conftest.py restores the seeded rows after each."""
    account = lytics_account(make_account("Race"))
    process(account, crm_record("ann@example.com", "Silver"),
            crm_record("bob@example.com", "Gold"), stream="crm_users")
    return account


@pytest.fixture
def between() -> Iterator[Callable[[Callable[[], None]], None]]:
    """Run a function once in another thread, with its own connection, between a
    computation's selection and its diff; the computation waits for it."""
    hooks: list[Callable[[], None]] = []

    def run(work: Callable[[], None]) -> None:
        failures: list[BaseException] = []

        def thread_body() -> None:
            try:
                work()
            except BaseException as exc:  # reported in the computing thread
                failures.append(exc)
            finally:
                connection.close()

        def hook() -> None:
            membership.AFTER_SELECT.remove(hook)
            thread = threading.Thread(target=thread_body)
            thread.start()
            thread.join(60)
            assert not thread.is_alive(), "the batch waited for the computation"
            if failures:
                raise failures[0]

        hooks.append(hook)
        membership.AFTER_SELECT.append(hook)

    yield run
    for hook in hooks:
        if hook in membership.AFTER_SELECT:
            membership.AFTER_SELECT.remove(hook)


def gold_audience(account: Account) -> Audience:
    created = editing.create_audience(account, None, name="Gold", slug="gold",
                                      text='FILTER loyalty_tier = "gold"', compute=False)
    membership.compute_audiences(account.pk, [created.pk])
    return Audience.objects.get(pk=created.pk)


@committing
def test_an_entry_committed_during_a_computation_is_kept(crm: Account, between: Any) -> None:
    gold = gold_audience(crm)
    ann = profile_of(crm, "email", "ann@example.com")
    bob = profile_of(crm, "email", "bob@example.com")
    assert members(gold) == {bob.pk}
    between(lambda: process(crm, crm_record("ann@example.com", "Gold"), stream="crm_users"))

    [result] = membership.compute_audiences(crm.pk, [gold.pk])

    assert members(gold) == {ann.pk, bob.pk}
    assert changes(gold, profile_id=ann.pk) == [(ann.pk, "entry", "realtime")]
    assert (result.size, result.entries, result.exits) == (2, 0, 0)
    assert Audience.objects.get(pk=gold.pk).size == 2


@committing
def test_an_exit_committed_during_a_computation_is_kept(crm: Account, between: Any) -> None:
    gold = gold_audience(crm)
    bob = profile_of(crm, "email", "bob@example.com")
    between(lambda: process(crm, crm_record("bob@example.com", "Silver"), stream="crm_users"))

    [result] = membership.compute_audiences(crm.pk, [gold.pk])

    assert members(gold) == set()
    assert changes(gold, profile_id=bob.pk) == [(bob.pk, "entry", "compute"),
                                                (bob.pk, "exit", "realtime")]
    assert (result.size, result.entries, result.exits) == (0, 0, 0)
    assert Audience.objects.get(pk=gold.pk).size == 0


@committing
def test_a_change_without_a_real_time_flip_is_reevaluated(crm: Account, between: Any) -> None:
    """The rule changed (membership is the old rule's) and a batch moves ann so that the new
    rule agrees with her old membership: real time flips nothing, and the computation must
    not put her in from her stale data."""
    gold = gold_audience(crm)
    ann = profile_of(crm, "email", "ann@example.com")
    bob = profile_of(crm, "email", "bob@example.com")
    editing.update_audience(gold, None, text='FILTER loyalty_tier = "silver"',
                            compute=False)
    gold.refresh_from_db()
    between(lambda: process(crm, crm_record("ann@example.com", "Bronze"), stream="crm_users"))

    membership.compute_audiences(crm.pk, [gold.pk])

    assert members(gold) == set()
    assert changes(gold, profile_id=ann.pk) == []
    assert changes(gold, profile_id=bob.pk)[-1] == (bob.pk, "exit", "compute")
    assert Audience.objects.get(pk=gold.pk).size == 0


@committing
def test_a_profile_deleted_during_a_computation_is_not_put_back(crm: Account,
                                                                between: Any) -> None:
    from profiles import gdpr
    from tests.conftest import system_actor

    gold = gold_audience(crm)
    bob = profile_of(crm, "email", "bob@example.com")
    ann = profile_of(crm, "email", "ann@example.com")
    process(crm, crm_record("ann@example.com", "Gold"), stream="crm_users")
    # ann's real-time entry happened; recompute while she is deleted
    between(lambda: gdpr.delete_profile(system_actor(crm), ann))

    membership.compute_audiences(crm.pk, [gold.pk])

    assert members(gold) == {bob.pk}
    assert changes(gold, profile_id=ann.pk) == [(ann.pk, "entry", "realtime"),
                                                (ann.pk, "exit", "delete")]
    assert Audience.objects.get(pk=gold.pk).size == 1
