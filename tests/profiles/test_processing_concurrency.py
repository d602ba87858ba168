"""Any number of workers give the same profiles as one: parallel workers (threads and
processes, each with its own connection) over interleaved events whose outcome depends on
their order (merges, conflicts, compaction) produce exactly what one worker produces; nobody
ends up with two profiles, no field update is lost, and a batch that fails returns its events
to the queue."""

from __future__ import annotations

import random
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.db import close_old_connections, connections

from cdp_site.models import Account
from profiles.models import PendingEvent, Profile, ProfileEvent
from profiles.processing import pipeline
from profiles.processing.batch import Batch
from profiles.processing.pipeline import process_pending
from tests import dbenv
from tests.conftest import make_account
from tests.profiles.processing import identity_schema, live_profiles, people, run, send

committing = pytest.mark.django_db(transaction=True, serialized_rollback=True)
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def accounts(db: None) -> Callable[[str], Account]:
    """Accounts with the identity schema. These tests commit: tests/conftest.py restores the
    seeded rows and empties the raw store after each."""

    def make(name: str) -> Account:
        account = make_account(name)
        identity_schema(account)
        return account

    return make


def interleaved_requests(seed: int = 7, people_count: int = 25, requests: int = 40,
                         per_request: int = 12) -> list[list[dict[str, Any]]]:
    """Requests of events from people sharing devices: anonymous page views, sign-ins that
    link a cookie to an email, events carrying two cookies, and a few shared tablets (two
    emails on one cookie: conflicts). Every event has its own page, so a lost update shows."""
    rng = random.Random(seed)
    cookies = {p: [f"c{p}-{k}" for k in range(rng.randint(1, 4))] for p in range(people_count)}
    shared = [f"tablet-{t}" for t in range(3)]
    out, n = [], 0
    for _ in range(requests):
        batch = []
        for _ in range(per_request):
            n += 1
            person = rng.randrange(people_count)
            email = f"person{person}@example.com"
            cookie = rng.choice(cookies[person])
            kind = rng.random()
            if kind < 0.35:
                message = {"_uid": cookie}
            elif kind < 0.6:
                message = {"email": email, "_uid": cookie}
            elif kind < 0.8:
                message = {"_uid": [cookie, rng.choice(cookies[person])]}
            elif kind < 0.9:
                message = {"email": email, "_uid": rng.choice(shared)}
            else:
                message = {"email": email}
            message["page"] = f"p{n}"
            batch.append(message)
        out.append(batch)
    return out


def store_all(account: Account, requests: list[list[dict[str, Any]]]) -> None:
    for request in requests:
        send(account, *request)


def in_threads(n: int, work: Callable[[int], None]) -> None:
    barrier = threading.Barrier(n)
    errors: list[BaseException] = []

    def target(i: int) -> None:
        try:
            barrier.wait()
            work(i)
        except BaseException as error:  # reported by the test
            errors.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=target, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert errors == []


def assert_same_people(expected: Account, actual: Account) -> None:
    mine, theirs = people(expected), people(actual)
    assert len(theirs) == len(mine)
    assert theirs == mine
    everyone = [i for ids, _ in theirs for i in ids]
    assert len(everyone) == len(set(everyone)), "an identifier on two profiles"


@committing
def test_parallel_workers_give_the_profiles_one_worker_gives(accounts: Any) -> None:
    requests = interleaved_requests()
    one, many = accounts("One worker"), accounts("Four workers")
    store_all(one, requests)
    store_all(many, requests)
    run(one)
    in_threads(4, lambda i: process_pending(account_id=many.pk, limit=5 + i * 3))
    assert PendingEvent.objects.count() == 0
    assert_same_people(one, many)
    assert Profile.objects.filter(account=many, conflicts__gt=0).exists()
    assert Profile.objects.filter(account=many, merged_into__isnull=False).exists()
    # no lost update: every event's page is on exactly one live profile
    pages = [page for p in live_profiles(many) for page in p.field_values.get("pages", [])]
    assert len(pages) == len(set(pages)) == sum(len(r) for r in requests)
    assert ProfileEvent.objects.filter(account=many).count() == len(pages)


@committing
def test_workers_keep_up_with_events_arriving_while_they_run(accounts) -> None:
    requests = interleaved_requests(seed=11, requests=30)
    one, many = accounts("Serial"), accounts("Live")
    store_all(one, requests)
    run(one)
    done = threading.Event()

    def work(i: int) -> None:
        if i == 0:  # the producer: requests arrive one after another
            for request in requests:
                send(many, *request)
                time.sleep(0.005)
            done.set()
            return
        while True:
            finished = done.is_set()
            if not process_pending(account_id=many.pk, limit=4 + i) and finished:
                return
            close_old_connections()

    in_threads(4, work)
    run(many)
    assert_same_people(one, many)


@committing
def test_accounts_are_processed_side_by_side(accounts) -> None:
    requests = interleaved_requests(seed=3, requests=10)
    reference, first, second = accounts("Reference"), accounts("First"), accounts("Second")
    for account in (reference, first, second):
        store_all(account, requests)
    run(reference)
    in_threads(3, lambda i: process_pending(limit=7))  # all accounts, taking turns
    assert_same_people(reference, first)
    assert_same_people(reference, second)


@committing
def test_a_batch_that_fails_returns_its_events_to_the_queue(accounts, monkeypatch) -> None:
    account = accounts("Crashing")
    send(account, {"_uid": "x", "page": "a"}, {"_uid": "y", "page": "b"})

    def crash(batch: Batch) -> None:
        raise RuntimeError("worker died")

    monkeypatch.setattr(settings, "STRATA_PIPELINE_STEPS",
                        [*pipeline.DEFAULT_STEPS, "tests.profiles.test_processing_concurrency"
                                                  ".crash_step"])
    globals()["crash_step"] = crash
    with pytest.raises(pipeline.BatchFailed) as exc:
        pipeline.process_batch(account.pk)
    assert len(exc.value.raw_event_ids) == 2
    assert isinstance(exc.value.error, RuntimeError)
    assert PendingEvent.objects.filter(account=account).count() == 2
    assert Profile.objects.filter(account=account).count() == 0
    monkeypatch.setattr(settings, "STRATA_PIPELINE_STEPS", pipeline.DEFAULT_STEPS)
    assert process_pending(account_id=account.pk) == 2
    assert len(live_profiles(account)) == 2


@pytest.mark.own_connection
@committing
def test_worker_processes_give_the_profiles_one_worker_gives(accounts) -> None:
    """Two `manage.py process_events` processes against the same database."""
    requests = interleaved_requests(seed=5, requests=20)
    one, many = accounts("One process"), accounts("Two processes")
    store_all(one, requests)
    store_all(many, requests)
    run(one)
    env = dbenv.subprocess_env()
    workers = [subprocess.Popen(
        [sys.executable, "manage.py", "process_events", "--batch", str(size), "--account",
         str(many.pk)], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for size in (6, 9)]
    outputs = [w.communicate(timeout=300) for w in workers]
    assert [w.returncode for w in workers] == [0, 0], outputs
    assert PendingEvent.objects.filter(account=many).count() == 0
    assert_same_people(one, many)
