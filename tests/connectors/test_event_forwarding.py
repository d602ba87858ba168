"""Event forwarding against a real local receiver: events of the chosen streams as received,
signed, only once processed, only of consented profiles when purposes are set, resumed from
the cursor."""

from __future__ import annotations

from typing import Any

import pytest
from django.utils import timezone
from pytest_httpserver import HTTPServer

from connectors import authorizations
from connectors.errors import InvalidInput
from connectors.jobs import create_job
from connectors.runner import run_job
from profiles.collection.messages import IncomingEvent
from profiles.collection.store import accept
from profiles.models import PendingEvent, ProfileEvent, RawEvent
from tests.conftest import system_actor
from tests.connectors.builders import Receiver, allow_local, make_person

pytestmark = pytest.mark.django_db


def send(account: Any, stream: str, n: int) -> list[int]:
    events = [IncomingEvent(message={"type": "track", "event": "viewed", "n": i},
                            message_id=f"{stream}-{i}", type="track", event="viewed")
              for i in range(n)]
    accept(account, stream, events, [], source="test", received_at=timezone.now())
    return list(RawEvent.objects.filter(account_id=account.pk, stream=stream)
                .order_by("id").values_list("id", flat=True))


@pytest.fixture
def setup(account: Any, httpserver: HTTPServer) -> dict[str, Any]:
    allow_local(account)
    new = authorizations.create_authorization(account, system_actor(account), name="Hook",
                                              kind="http", base_url=httpserver.url_for("/"))
    receiver = Receiver(new.signing_secret or "")
    httpserver.expect_request("/events").respond_with_handler(receiver.handler)
    return {"auth": new.obj, "receiver": receiver}


def test_processed_events_of_chosen_streams_are_forwarded(account: Any,
                                                           setup: dict[str, Any]) -> None:
    web = send(account, "web", 5)
    send(account, "app", 2)
    job = create_job(account, None, name="Fwd", kind="event_forwarding",
                     authorization_id=setup["auth"].pk,
                     config={"streams": ["web"], "path": "events", "batch_size": 2})
    run_job(job.pk, sleep=lambda _s: None)
    assert setup["receiver"].messages == []  # nothing processed yet
    PendingEvent.objects.filter(raw_event_id__in=web[:3]).delete()  # the first three processed
    run_job(job.pk, sleep=lambda _s: None)
    forwarded = [e for m in setup["receiver"].unique() for e in m["events"]]
    assert [e["id"] for e in forwarded] == web[:3]
    assert forwarded[0]["message"]["n"] == 0 and forwarded[0]["stream"] == "web"
    PendingEvent.objects.filter(account_id=account.pk).delete()
    run = run_job(job.pk, sleep=lambda _s: None)
    forwarded = [e["id"] for m in setup["receiver"].unique() for e in m["events"]]
    assert forwarded == web and run is not None and run.added == 2


def test_only_consented_profiles_events_with_purposes(account: Any,
                                                      setup: dict[str, Any]) -> None:
    ids = send(account, "web", 3)
    PendingEvent.objects.filter(account_id=account.pk).delete()
    yes, no = make_person(account, 1), make_person(account, 2, consents=())
    for raw_id, profile in zip(ids, [yes, no], strict=False):
        ProfileEvent.objects.create(account=account, profile=profile, raw_event_id=raw_id,
                                    stream="web", event="viewed", at=timezone.now())
    job = create_job(account, None, name="Fwd", kind="event_forwarding",
                     authorization_id=setup["auth"].pk,
                     config={"streams": ["web"], "path": "events", "purposes": ["advertising"]})
    run = run_job(job.pk, sleep=lambda _s: None)
    forwarded = [e["id"] for m in setup["receiver"].unique() for e in m["events"]]
    assert forwarded == [ids[0]]
    assert run is not None and (run.added, run.omitted) == (1, 2)


def test_streams_are_required(account: Any, setup: dict[str, Any]) -> None:
    with pytest.raises(InvalidInput) as caught:
        create_job(account, None, name="Fwd", kind="event_forwarding",
                   authorization_id=setup["auth"].pk, config={"streams": []})
    assert caught.value.path == "config.streams"
