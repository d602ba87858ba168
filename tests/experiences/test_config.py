"""experiences.config: the snapshot the decision paths read, its cache and its ETag."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from audiences.models import Audience
from cdp_site.models import Account
from experiences import config
from experiences.models import BanditWeights, Experience, ExperienceGoal, Goal, Phase, Variant

pytestmark = pytest.mark.django_db



def live_experience(account: Account, key: str = "hero", *, status: str = "active",
                    distribution: str = "equal", weights: dict[str, float] | None = None,
                    **fields: Any) -> Experience:
    """Rows as the lifecycle leaves them after activation: variants, a goal, phase 1."""
    exp = Experience.objects.create(account=account, key=key, uid=fields.pop("uid", "a"),
                                    name=key.title(), status=status, distribution=distribution,
                                    phase=1, **fields)
    for position, (vkey, value) in enumerate([("control", "Book now"), ("bold", "Go!")]):
        Variant.objects.create(account=account, experience=exp, key=vkey, uid=str(position),
                               value=value, content={"title": value, "tags": ["x"]},
                               is_base=position == 0, position=position)
    goal, _ = Goal.objects.get_or_create(account=account, key="booked",
                                         defaults={"name": "Booked", "event": "booked",
                                                   "where": [{"field": "price", "op": ">",
                                                              "value": 0}]})
    ExperienceGoal.objects.create(account=account, experience=exp, goal=goal, primary=True)
    Phase.objects.create(account=account, experience=exp, number=1,
                         weights=weights or {"control": 0.5, "bold": 0.5},
                         variant_keys=["control", "bold"])
    return exp


def test_snapshot_holds_variants_weights_goals_and_seed(account: Account) -> None:
    live_experience(account, distribution="custom", weights={"control": 0.2, "bold": 0.8})
    snapshot = config.active_config(account.pk)
    exp = snapshot.get("hero")
    assert exp is snapshot.get("a") and exp.serve == config.SERVE_SPLIT and exp.live
    assert [(v.key, v.uid, v.value, v.is_base) for v in exp.variants] == [
        ("control", "0", "Book now", True), ("bold", "1", "Go!", False)]
    assert exp.weights == (0.2, 0.8) and exp.variant("1").weight == 0.8
    assert exp.base.key == "control" and exp.seed == "a" and exp.hash_version == 2
    assert exp.primary_goal.event == "booked" and exp.primary_goal.where[0]["op"] == ">"
    assert snapshot.draft_keys == frozenset()


def test_snapshot_is_immutable_but_encodes_and_thaws(account: Account) -> None:
    live_experience(account)
    variant = config.active_config(account.pk).get("hero").variants[0]
    with pytest.raises(TypeError):
        variant.content["title"] = "changed"
    with pytest.raises(AttributeError):
        variant.key = "other"  # type: ignore[misc]
    assert json.loads(json.dumps(variant.content)) == {"title": "Book now", "tags": ["x"]}
    thawed = config.thaw(variant.content)
    thawed["title"] = "mine"
    assert copy.deepcopy(variant.content) == {"title": "Book now", "tags": ("x",)}
    assert config.active_config(account.pk).get("hero").variants[0].content["title"] == "Book now"


def test_reads_within_the_ttl_cost_no_query(account: Account, settings: Any) -> None:
    settings.STRATA_EXPERIENCE_CONFIG_TTL = 60
    live_experience(account)
    config.active_config(account.pk)
    with CaptureQueriesContext(connection) as queries:
        for _ in range(100):
            config.active_config(account.pk)
    assert len(queries) == 0


def test_an_unchanged_account_costs_one_check_query_after_the_ttl(account: Account,
                                                                   settings: Any) -> None:
    settings.STRATA_EXPERIENCE_CONFIG_TTL = 0
    live_experience(account)
    first = config.active_config(account.pk)
    with CaptureQueriesContext(connection) as queries:
        again = config.active_config(account.pk)
    assert again is first and len(queries) == 1


def test_a_version_bump_elsewhere_is_seen_after_the_ttl(account: Account, settings: Any) -> None:
    settings.STRATA_EXPERIENCE_CONFIG_TTL = 0
    exp = live_experience(account)
    before = config.active_config(account.pk)
    Experience.objects.filter(pk=exp.pk).update(status="paused", version=2)
    after = config.active_config(account.pk)
    assert after.get("hero").serve == config.SERVE_BASE
    assert after.get("hero").reason == "paused" and after.get("hero").served.key == "control"
    assert after.etag != before.etag


def test_within_the_ttl_only_invalidate_shows_a_change(account: Account, settings: Any) -> None:
    settings.STRATA_EXPERIENCE_CONFIG_TTL = 60
    exp = live_experience(account)
    config.active_config(account.pk)
    Experience.objects.filter(pk=exp.pk).update(status="paused", version=2)
    assert config.active_config(account.pk).get("hero").status == "active"  # stale, by design
    config.invalidate(account.pk)
    assert config.active_config(account.pk).get("hero").status == "paused"


def test_bandits_use_their_latest_weights_of_the_current_phase(account: Account,
                                                               settings: Any) -> None:
    settings.STRATA_EXPERIENCE_CONFIG_TTL = 0
    exp = live_experience(account, distribution="bandit")
    assert config.active_config(account.pk).get("hero").weights == (0.5, 0.5)
    BanditWeights.objects.create(account=account, experience=exp, phase=1,
                                 weights={"control": 0.3, "bold": 0.7})
    BanditWeights.objects.create(account=account, experience=exp, phase=0,  # an older phase
                                 weights={"control": 0.9, "bold": 0.1})
    assert config.active_config(account.pk).get("hero").weights == (0.3, 0.7)


def test_completed_with_a_winner_serves_it_to_everyone(account: Account) -> None:
    exp = live_experience(account, status="completed")
    exp.winner = exp.variants.get(key="bold")
    exp.save()
    hero = config.active_config(account.pk).get("hero")
    assert hero.serve == config.SERVE_WINNER and hero.served.key == "bold" and not hero.live


def test_segmented_variants_by_priority_and_target_audiences(account: Account) -> None:
    cuisine = Audience.objects.create(account=account, slug="cuisine", name="Cuisine",
                                      api_accessible=True, rule={})
    travel = Audience.objects.create(account=account, slug="travel", name="Travel",
                                     api_accessible=True, rule={})
    exp = live_experience(account, type="segmented", target="audiences")
    exp.target_audiences.set([cuisine, travel])
    Variant.objects.filter(experience=exp, key="bold").update(audience=cuisine, priority=2)
    Variant.objects.create(account=account, experience=exp, key="travel", uid="2",
                           audience=travel, priority=1, position=2, value="Fly")
    hero = config.active_config(account.pk).get("hero")
    assert hero.serve == config.SERVE_SEGMENTS
    assert [(v.key, v.audience) for v in hero.segments] == [("travel", "travel"),
                                                           ("bold", "cuisine")]
    assert set(hero.target_audiences) == {"cuisine", "travel"}


def test_drafts_are_named_but_not_served_and_accounts_stay_apart(
        account: Account, other_account: Account) -> None:
    live_experience(account)
    Experience.objects.create(account=account, key="later", uid="b", name="Later")
    live_experience(other_account, key="elsewhere")
    mine = config.active_config(account.pk)
    assert [e.key for e in mine.experiences] == ["hero"] and mine.draft_keys == {"later"}
    assert mine.get("later") is None and mine.get("elsewhere") is None
    assert [e.key for e in config.active_config(other_account.pk).experiences] == ["elsewhere"]


def test_etag_is_the_same_in_every_process_for_the_same_data(account: Account) -> None:
    live_experience(account)
    first = config.config_etag(account.pk)
    config.invalidate()  # as another process would build it
    assert config.config_etag(account.pk) == first
