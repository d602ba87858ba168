"""Raw keys' "times used by mappings" (issue 3, item 7), recomputed on publish and revert: the
stream explorer's used/unused filter then works."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.test import Client

from cdp_site.models import Account
from profiles.explorer import aggregate
from profiles.models import RawKey
from profiles.schema.drafts import save_field, save_mapping, save_route_rule
from profiles.schema.key_usage import recompute_key_usage
from profiles.schema.lytics import install_lytics_schema
from profiles.schema.versions import publish, revert
from tests.conftest import make_user
from tests.profiles.raw_events import ago, run_aggregator, store, track


@pytest.fixture(autouse=True)
def fresh_fences() -> Iterator[None]:
    aggregate.forget_fences()
    yield
    aggregate.forget_fences()


def _used(account: Account, stream: str = "web") -> dict[str, int]:
    return dict(RawKey.objects.filter(account=account, stream=stream,
                                      times_used_by_mappings__gt=0)
                .values_list("key", "times_used_by_mappings"))


def _seed(account: Account) -> None:
    store(account, [
        track("Order Completed", price=9.5, sku="A-1", taxonomy="cuisine"),
        {"type": "identify", "userId": "u1", "anonymousId": "c1",
         "traits": {"email": "ana@example.com", "plan": "pro"}},
    ], received_at=ago(minutes=30))
    store(account, [{"origin": {"email": "bo@example.com"},
                     "response": {"loyalty_tier": "gold", "preferred_activities": ["ski"]}}],
          stream="crm_users", received_at=ago(minutes=20))
    store(account, [{"_url": "http://localhost/x", "page": "home"}], stream="default",
          received_at=ago(minutes=10))
    run_aggregator()


def test_publish_counts_the_keys_each_mapping_guard_and_route_rule_reads(
        account: Account) -> None:
    _seed(account)
    install_lytics_schema(account)  # email, user_id, _uid, taxonomy on web; crm_users mappings
    used = _used(account)
    # `email(oneof(email, traits.email, ...))` reads traits.email; oneof(`_uid`, anonymousId);
    # `oneof(taxonomy, properties.taxonomy)`: taxonomy is found under properties. too (one use);
    # userId (user_id); previousId (an alias's, to `_uid`) is no key of these events
    assert used == {"traits.email": 1, "anonymousId": 1, "properties.taxonomy": 1, "userId": 1}
    assert _used(account, "crm_users") == {
        "origin.email": 1, "response.loyalty_tier": 1, "response.preferred_activities[]": 1}

    plan = save_field(account, name="plan", type="string", merge_operator="latest")
    save_mapping(account, field=plan, stream="web", expression="traits.plan",
                 guard='exists(traits.email) AND event != "x"')
    save_route_rule(account, input_stream="default", output_stream="app_divert",
                    expression='contains(`_url`, "localhost")')
    version = publish(account)

    used = _used(account)
    assert used["traits.email"] == 2  # the email mapping and the plan mapping's guard
    assert used["traits.plan"] == 1 and used["event"] == 1
    assert "properties.sku" not in used and "properties.price" not in used
    assert _used(account, "default") == {"_url": 1}

    revert(account, version.number - 1)  # back to the Lytics schema only
    assert _used(account) == {"traits.email": 1, "anonymousId": 1, "properties.taxonomy": 1,
                              "userId": 1}
    assert _used(account, "default") == {}


def test_a_whole_object_read_counts_every_key_under_it(account: Account) -> None:
    _seed(account)
    snapshot: dict[str, Any] = {"mappings": [
        {"field": "r", "stream": "crm_users", "expression": "tostring(response)", "guard": ""},
    ], "route_rules": [
        {"input_stream": "crm_users", "expression": "exists(origin)", "active": False},
    ]}
    recompute_key_usage(account, snapshot)
    assert _used(account, "crm_users") == {
        "response.loyalty_tier": 1, "response.preferred_activities[]": 1}  # inactive rule: no


def test_the_explorer_filter_sees_published_usage(account: Account) -> None:
    _seed(account)
    install_lytics_schema(account)
    client = Client()
    client.force_login(make_user("dana", account, ["data_manager"]))

    def keys(query: str) -> list[str]:
        response = client.get(f"/streams/web/keys/?{query}", HTTP_HX_REQUEST="true")
        return [row["key"].key for row in response.context["key_rows"]]

    assert sorted(keys("used=true")) == ["anonymousId", "properties.taxonomy", "traits.email",
                                         "userId"]
    assert "properties.sku" in keys("used=false")


def test_keys_first_seen_after_the_publish_are_counted_at_once(account: Account) -> None:
    """A fresh demo publishes its schema before any event: the keys the aggregator then
    inserts are counted against the live version, not left at 0 until the next publish."""
    install_lytics_schema(account)
    _seed(account)
    assert _used(account) == {"traits.email": 1, "anonymousId": 1, "properties.taxonomy": 1,
                              "userId": 1}
    assert _used(account, "crm_users")["response.loyalty_tier"] == 1


def test_keys_of_an_account_that_never_published_stay_unused(account: Account) -> None:
    _seed(account)
    assert _used(account) == {}
