"""Webhook enrichment against a real local CRM endpoint: answers become events in a stream,
bad answers are logged per profile, the rate limit paces the calls, a batch stored again
counts once."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from connectors import authorizations
from connectors.errors import InvalidInput
from connectors.jobs import create_job
from connectors.models import Job
from connectors.runner import run_job
from profiles.models import RawEvent
from tests.conftest import system_actor
from tests.connectors.builders import allow_local, enter, make_audience, make_person

pytestmark = pytest.mark.django_db
CRM = {"p0@example.com": {"loyalty_tier": "Gold", "preferred_activities": ["ski", "spa"]},
       "p1@example.com": {"loyalty_tier": "Silver", "preferred_activities": []}}


def crm(request: Request) -> Response:
    email = request.path.rsplit("/", 1)[-1]
    if email == "p2@example.com":
        return Response("<html>oops</html>", content_type="text/html")
    if email == "p3@example.com":
        return Response(b"[" + b"1," * 600_000 + b"1]", content_type="application/json")
    if email in CRM:
        return Response(json.dumps(CRM[email]), content_type="application/json")
    return Response("{}", status=404)


@pytest.fixture
def auth(account: Any, httpserver: HTTPServer) -> Any:
    allow_local(account)
    httpserver.expect_request(re.compile(r"^/crm/lookup/.*"), method="GET"
                              ).respond_with_handler(crm)
    return authorizations.create_authorization(
        account, system_actor(account), name="CRM", kind="http",
        base_url=httpserver.url_for("/"), secret={"bearer_token": "crm"}).obj


class FakeClock:
    """A monotonic clock that moves only when the job sleeps."""

    def __init__(self) -> None:
        self.at = 1000.0
        self.waits: list[float] = []

    def now(self) -> float:
        return self.at

    def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.at += seconds


def enrichment_job(account: Any, auth: Any, **config: Any) -> Job:
    return create_job(account, None, name="CRM", kind="webhook_enrichment",
                      authorization_id=auth.pk,
                      config={"identifier": "email", "url": "crm/lookup/{value}",
                              "stream": "crm", **config})


def stored(account: Any) -> list[dict[str, Any]]:
    return [r.message for r in RawEvent.objects.filter(account_id=account.pk, stream="crm")
            .order_by("id")]


def test_answers_become_events_and_bad_answers_are_logged(account: Any, auth: Any) -> None:
    people = [make_person(account, n) for n in range(5)]
    for person in people:  # identifiers as the pipeline stores them: lower case
        person.identifiers.update(value=f"p{people.index(person)}@example.com")
    job = enrichment_job(account, auth, rate_per_second=1000)
    waits: list[float] = []
    run = run_job(job.pk, sleep=waits.append)
    assert run is not None and run.outcome == "synced"
    messages = stored(account)
    assert [(m["origin"], m["response"]) for m in messages] == [
        ({"email": "p0@example.com"}, CRM["p0@example.com"]),
        ({"email": "p1@example.com"}, CRM["p1@example.com"])]
    assert (run.added, run.omitted, run.errors) == (2, 1, 2)  # p4 unknown (404)
    errors = list(job.log.filter(kind="error").values_list("message", flat=True))
    assert any("not JSON" in e for e in errors) and any("over 1048576 bytes" in e
                                                        for e in errors)
    Job.objects.filter(pk=job.pk).update(cursor={}, next_run_at=None)  # run it all again
    run_job(job.pk, sleep=waits.append)
    assert len(stored(account)) == 2  # the same message ids: stored once


def test_audience_members_only_and_rate_limit_paces_calls(account: Any, auth: Any) -> None:
    people = [make_person(account, n) for n in range(3)]
    for n, person in enumerate(people):
        person.identifiers.update(value=f"p{n}@example.com")
    enter(make_audience(account), people[:2])
    job = enrichment_job(account, auth, audience="gold", rate_per_second=4)
    clock = FakeClock()
    run_job(job.pk, sleep=clock.sleep, monotonic=clock.now)  # calls take no time on it
    assert len(stored(account)) == 2
    assert clock.waits == [pytest.approx(0.25)]


def test_429_retry_after_is_waited_for(account: Any, httpserver: HTTPServer) -> None:
    allow_local(account)
    answers = iter([Response("", status=429, headers={"Retry-After": "2"}),
                    Response(json.dumps({"loyalty_tier": "Gold"}),
                             content_type="application/json")])
    httpserver.expect_request(re.compile(r"^/busy/p0.example\.com$")).respond_with_handler(
        lambda _r: next(answers))
    auth = authorizations.create_authorization(
        account, None, name="Busy", kind="http", base_url=httpserver.url_for("/")).obj
    make_person(account, 0).identifiers.update(value="p0@example.com")
    job = create_job(account, None, name="E", kind="webhook_enrichment",
                     authorization_id=auth.pk,
                     config={"identifier": "email", "url": "busy/{value}", "stream": "crm"})
    waits: list[float] = []
    run_job(job.pk, sleep=waits.append)
    assert waits == [2.0]
    assert stored(account)[0]["response"] == {"loyalty_tier": "Gold"}


@pytest.mark.parametrize(("config", "path"), [
    ({"url": "x/{value}", "stream": "crm"}, "config.identifier"),
    ({"identifier": "email", "url": "x", "stream": "crm"}, "config.url"),
    ({"identifier": "email", "url": "x/{value}", "stream": "Bad Stream"}, "config.stream"),
    ({"identifier": "email", "url": "x/{value}", "stream": "crm", "rate_per_second": 0},
     "config.rate_per_second"),
])
def test_bad_configuration_is_refused(account: Any, auth: Any, config: dict[str, Any],
                                      path: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        create_job(account, None, name="E", kind="webhook_enrichment",
                   authorization_id=auth.pk, config=config)
    assert caught.value.path == path
