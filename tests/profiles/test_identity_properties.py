"""Identity resolution as a law: the same events give the same profiles whether one worker
processes them in one go or three workers race over them in small batches, however the events
were split into requests. Events are drawn (people, shared cookies and tablets that make
merges and conflicts), the split and the batch sizes are drawn too; every example gets two
fresh accounts. Examples are few and derandomized: each one commits and runs three threads."""

from __future__ import annotations

import json
from datetime import timedelta
from itertools import pairwise
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from profiles.models import PendingEvent
from profiles.processing.pipeline import process_pending
from tests.conftest import make_account
from tests.profiles.processing import T0, identity_schema, people, run, send
from tests.profiles.test_processing_concurrency import assert_same_people, in_threads

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)
_examples = iter(range(10**6))


@st.composite
def messages(draw: st.DrawFn) -> list[dict[str, Any]]:
    """4 to 30 events of up to 5 people, each with a page of its own (a lost update shows)."""
    count = draw(st.integers(4, 30))
    out = []
    for n in range(count):
        person = draw(st.integers(0, 4))
        email = f"p{person}@example.com"
        cookie = f"c{person}-{draw(st.integers(0, 2))}"
        kind = draw(st.sampled_from(["cookie", "sign-in", "two cookies", "tablet", "email"]))
        message: dict[str, Any] = {
            "cookie": {"_uid": cookie},
            "sign-in": {"email": email, "_uid": cookie},
            "two cookies": {"_uid": [cookie, f"c{person}-{draw(st.integers(0, 2))}"]},
            "tablet": {"email": email, "_uid": f"tablet-{draw(st.integers(0, 1))}"},
            "email": {"email": email},
        }[kind]
        out.append({**message, "page": f"page-{n}"})
    return out


def split(events: list[dict[str, Any]], cuts: list[int]) -> list[list[dict[str, Any]]]:
    bounds = [0, *sorted({c % len(events) for c in cuts if c % len(events)}), len(events)]
    return [events[a:b] for a, b in pairwise(bounds)]


def store(account: Any, requests: list[list[dict[str, Any]]]) -> None:
    """Each request in its own statement, the events keeping the times they have in one."""
    offset = 0
    for request in requests:
        send(account, *request, at=T0 + timedelta(seconds=offset))
        offset += len(request)


def fresh_account(label: str) -> Any:
    n = next(_examples)
    account = make_account(f"{label} {n}", slug=f"{label.lower()}-{n}")
    identity_schema(account)
    return account


@settings(max_examples=6, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(messages(), st.lists(st.integers(1, 100), max_size=6),
       st.lists(st.integers(1, 7), min_size=3, max_size=3))
def test_one_worker_and_three_agree_in_any_batch_split(
        transactional_db: None, events: list[dict[str, Any]], cuts: list[int],
        limits: list[int]) -> None:
    one, three = fresh_account("One"), fresh_account("Three")
    store(one, [events])
    store(three, split(events, cuts))
    run(one)
    in_threads(3, lambda i: process_pending(account_id=three.pk, limit=limits[i]))
    run(three)  # a thread that found nothing claimable left early; the rest finishes here
    assert PendingEvent.objects.filter(account=three).count() == 0
    assert_same_people(one, three)
    pages = [page for _, summary in people(three) for page in _pages(summary)]
    assert sorted(pages) == sorted(e["page"] for e in events)


def _pages(summary: str) -> list[str]:
    return list(json.loads(summary)["values"].get("pages", []))
