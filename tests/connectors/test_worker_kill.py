"""A worker killed mid-run loses nothing and repeats nothing: a django-q2 cluster (ORM broker)
runs an export, is killed with SIGKILL after a few batches, and a new cluster resumes from the
stored cursor. The receiver deduplicates on ``webhook-id`` as Standard Webhooks receivers do;
it then holds every member's add exactly once."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from connectors import authorizations
from connectors.jobs import create_job, enqueue
from connectors.models import Job
from tests import dbenv
from tests.conftest import system_actor
from tests.connectors.builders import Receiver, allow_local, enter, make_audience, make_person

ROOT = Path(__file__).resolve().parents[2]
MEMBERS = 240
BATCH = 20


def wait_for(condition: Callable[[], bool], what: str, deadline: float = 180.0) -> None:
    end = time.monotonic() + deadline
    while not condition():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def start_cluster() -> subprocess.Popen[bytes]:
    env = dbenv.subprocess_env(STRATA_CONNECTOR_STALE_AFTER="1", STRATA_Q_WORKERS="1")
    return subprocess.Popen([sys.executable, "manage.py", "qcluster"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)


def kill_cluster(cluster: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(cluster.pid, signal.SIGKILL)
    cluster.wait(timeout=30)


@pytest.mark.slow
@pytest.mark.own_connection
@pytest.mark.django_db(transaction=True)
def test_sigkilled_worker_resumes_without_loss_or_duplicates(
        account: Any, httpserver: HTTPServer) -> None:
    allow_local(account)
    new = authorizations.create_authorization(
        account, system_actor(account), name="Hook", kind="http",
        base_url=httpserver.url_for("/"), secret={})
    receiver = Receiver(new.signing_secret or "")
    slow = threading.Event()

    def handler(request: Request) -> Response:
        if not slow.is_set():
            time.sleep(0.2)  # slow enough for the kill to land mid-run
        return receiver.handler(request)

    httpserver.expect_request("/hook").respond_with_handler(handler)
    audience = make_audience(account)
    people = [make_person(account, n, consents=()) for n in range(MEMBERS)]
    enter(audience, people)
    job = create_job(account, None, name="Export", kind="audience_webhook",
                     authorization_id=new.obj.pk,
                     config={"audience": "gold", "path": "hook", "batch_size": BATCH})

    first = start_cluster()
    try:
        enqueue(job.pk)
        wait_for(lambda: len(receiver.messages) >= 3, "a few batches")
    finally:
        kill_cluster(first)
    job.refresh_from_db()
    assert job.state == Job.State.RUNNING  # the run was cut short
    assert len(receiver.messages) < MEMBERS // BATCH
    killed_at = job.cursor

    slow.set()
    second = start_cluster()
    try:
        wait_for(lambda: Job.objects.get(pk=job.pk).heartbeat_at is None
                 or Job.objects.get(pk=job.pk).heartbeat_at.timestamp() < time.time() - 1.5,
                 "the dead worker's heartbeat to go stale", deadline=30)
        enqueue(job.pk)
        wait_for(lambda: Job.objects.get(pk=job.pk).state == Job.State.SLEEPING,
                 "the resumed run to finish")
    finally:
        kill_cluster(second)

    job.refresh_from_db()
    assert job.log.filter(kind="started",
                          message__contains="resumed from the saved cursor").exists()
    assert killed_at  # it had saved batches before the kill
    adds = [c["profile_id"] for c in receiver.changes("add")]
    assert sorted(adds) == sorted(p.pk for p in people)  # no gaps, no duplicates
    by_id: dict[str, list[dict[str, Any]]] = {}
    for message_id, message in zip(receiver.ids, receiver.messages, strict=True):
        by_id.setdefault(message_id, []).append(message)
    assert all(all(m == copies[0] for m in copies) for copies in by_id.values())
