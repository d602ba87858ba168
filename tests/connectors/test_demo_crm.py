"""The demo's use case 4 pieces: the loopback CRM answers the same record for the same email,
the seeded enrichment job brings its answers into the ``crm_users`` stream, the seeded export
job posts to the demo ad partner, and seeding twice changes nothing."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from connectors.models import Authorization, Job
from connectors.runner import run_job
from demo import connectors as demo
from profiles.models import RawEvent
from tests.connectors.builders import enter, make_audience, make_person

pytestmark = pytest.mark.django_db


@pytest.fixture
def servers() -> Iterator[tuple[int, int]]:
    started = demo.start_servers(crm_port=0, partner_port=0)
    try:
        yield started[0].server_address[1], started[1].server_address[1]
    finally:
        for server in started:
            server.shutdown()
            server.server_close()


def test_crm_record_is_stable_and_sometimes_unknown() -> None:
    records = [demo.crm_record(f"person{n}@example.com") for n in range(200)]
    assert records == [demo.crm_record(f"person{n}@example.com") for n in range(200)]
    known = [r for r in records if r is not None]
    assert 100 < len(known) < 200
    assert {r["loyalty_tier"] for r in known} == set(demo.TIERS)
    assert all(set(r["preferred_activities"]) <= set(demo.ACTIVITIES) for r in known)


def test_seeded_jobs_enrich_and_export(account: Any, servers: tuple[int, int]) -> None:
    crm_port, partner_port = servers
    audience = make_audience(account, "gold_members")
    people = [make_person(account, n) for n in range(10)]
    for n, person in enumerate(people):
        person.identifiers.update(value=f"p{n}@example.com")
    demo.seed_demo_connectors(account, crm_port=crm_port, partner_port=partner_port)
    demo.seed_demo_connectors(account, crm_port=crm_port, partner_port=partner_port)
    assert Authorization.objects.filter(account=account).count() == 2
    assert Job.objects.filter(account=account).count() == 2

    enrich = Job.objects.get(account=account, name=demo.ENRICH_JOB)
    run = run_job(enrich.pk, sleep=lambda _s: None)
    assert run is not None and run.outcome == "synced"
    stored = {r.message["origin"]["email"]: r.message["response"] for r in
              RawEvent.objects.filter(account_id=account.pk, stream="crm_users")}
    expected = {f"p{n}@example.com": demo.crm_record(f"p{n}@example.com") for n in range(10)}
    assert stored == {email: rec for email, rec in expected.items() if rec is not None}

    enter(audience, people[:3])
    export = Job.objects.get(account=account, name=demo.EXPORT_JOB)
    before = len(demo._Handler.received)
    run = run_job(export.pk, sleep=lambda _s: None)
    assert run is not None and run.added == 3
    (message,) = demo._Handler.received[before:]
    assert message["audience"]["slug"] == "gold_members"
    assert all(len(c["identifiers"]["email"][0]) == 64 for c in message["changes"])  # hashed
