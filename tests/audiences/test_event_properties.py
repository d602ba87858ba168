"""Event conditions on the event's own properties (issue 12, item 7): ``EVENT buy
WHERE(amount > 0)`` and ``WHERE(properties.amount > 0)`` read the properties the event
carried (kept on its profile event, bounded), not only mapped values; the real-time step, the
full computation (SQL) and the Python predicate (the "Why?" code) agree; event names are
case-sensitive."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.utils import timezone

from audiences import editing, membership
from audiences.compiler import CompileContext, compile_predicate
from audiences.explain import profile_view
from audiences.models import Audience
from cdp_site.models import Account
from profiles.models import Profile, ProfileEvent
from profiles.processing import event_properties
from profiles.processing.event_properties import own_properties
from tests.audiences.live import lytics_account, members, process, profile_of
from tests.conftest import make_token, token_client

pytestmark = pytest.mark.django_db

RULES = {
    "bare": "FILTER EVENT buy WHERE(amount > 0)",
    "path": "FILTER EVENT buy WHERE(properties.amount > 0)",
    "context": 'FILTER EVENT buy WHERE(context.page.path = "/checkout")',
    "mapped": "FILTER EVENT buy WHERE(price >= 10)",
    "capital": "FILTER EVENT Buy",
}


@pytest.fixture
def live(account: Account) -> Account:
    return lytics_account(account)


def track(uid: str, name: str, **properties: Any) -> dict[str, Any]:
    return {"type": "track", "event": name, "anonymousId": uid, "properties": properties,
            "context": {"page": {"path": "/checkout"}}}


def audiences(account: Account) -> dict[str, Audience]:
    found = {}
    for slug, text in RULES.items():
        created = editing.create_audience(account, None, name=slug, slug=slug, text=text,
                                          compute=False)
        membership.compute_audiences(account.pk, [created.pk])
        found[slug] = Audience.objects.get(pk=created.pk)
    return found


def predicate_members(account: Account, audience: Audience, pids: list[int]) -> set[int]:
    now = timezone.now()
    ctx = CompileContext(schema=membership.rule_schema(account), now=now)
    predicate = compile_predicate(audience.rule, ctx)
    return {pid for pid in pids
            if predicate(profile_view(Profile.objects.get(pk=pid), audience.rule, now))}


def test_where_reads_the_events_own_properties_in_every_evaluator(live: Account) -> None:
    found = audiences(live)  # before any event: real time makes the entries
    process(live, track("buyer", "buy", amount=25, price=12),
            track("free", "buy", amount=0, price=3),
            {"type": "track", "event": "buy", "anonymousId": "plain", "properties": {}})
    buyer, free, plain = (profile_of(live, "_uid", uid).pk for uid in ("buyer", "free",
                                                                       "plain"))
    everyone = [buyer, free, plain]
    expected = {"bare": {buyer}, "path": {buyer}, "context": {buyer, free},
                "mapped": {buyer}, "capital": set()}
    realtime = {slug: members(a) for slug, a in found.items()}
    assert realtime == expected
    membership.compute_audiences(live.pk, [a.pk for a in found.values()])  # the SQL
    computed = {slug: members(Audience.objects.get(pk=a.pk)) for slug, a in found.items()}
    assert computed == expected
    predicted = {slug: predicate_members(live, a, everyone) for slug, a in found.items()}
    assert predicted == expected


def test_a_mapped_value_wins_over_the_own_property_of_the_same_name(live: Account) -> None:
    process(live, track("v1", "buy", price="12"))  # mapped to the number 12
    event = ProfileEvent.objects.get(event="buy")
    assert event.properties["price"] == 12 and event.own_properties["price"] == "12"
    created = editing.create_audience(live, None, name="m", slug="m",
                                      text="FILTER EVENT buy WHERE(price = 12)")
    membership.compute_audiences(live.pk, [created.pk])
    assert members(Audience.objects.get(pk=created.pk)) == {event.profile_id}


def test_own_properties_are_not_shown_on_the_timeline(live: Account) -> None:
    process(live, track("v2", "buy", amount=25, secret_note="do not show"))
    pid = profile_of(live, "_uid", "v2").pk
    _token, secret = make_token(live)
    body = token_client(secret).get(f"/api/v1/profiles/{pid}/events").content.decode()
    assert "do not show" not in body and "secret_note" not in body


def test_the_kept_properties_are_bounded() -> None:
    message = {"type": "track", "event": "buy",
               "properties": {"amount": 5, "long": "x" * 10_000, "tags": ["a", "b"],
                              "nested": {"deep": {"er": 1}}, "empty": {}},
               "context": {f"k{i}": "v" * 40 for i in range(500)}}
    kept = own_properties(message)
    assert kept["amount"] == 5 and kept["properties.amount"] == 5
    assert kept["tags"] == ["a", "b"] and kept["properties.nested.deep.er"] == 1
    assert "long" not in kept and "properties.long" not in kept  # left out, not cut
    assert kept["type"] == "track" and kept["event"] == "buy"
    assert len(kept) <= event_properties.MAX_KEYS
    compact = json.dumps(kept, separators=(",", ":"), ensure_ascii=False).encode()
    assert 3000 < len(compact) <= event_properties.MAX_BYTES
    # a top-level key of the same name keeps its own meaning
    assert own_properties({"type": "track", "properties": {"type": "gift"}})["type"] == "track"


def test_a_lytics_tag_message_keeps_its_flat_keys() -> None:
    assert own_properties({"amount": "30", "_e": "pv", "user": {"id": "22"}}) == {
        "amount": "30", "_e": "pv", "user.id": "22"}


def test_event_conditions_in_the_schema_and_docs_examples_are_accepted(live: Account) -> None:
    _token, secret = make_token(live)
    for text in RULES.values():
        response = token_client(secret).post("/api/v1/audiences/validate/", {"text": text},
                                             format="json")
        assert response.status_code == 200, (text, response.content)
