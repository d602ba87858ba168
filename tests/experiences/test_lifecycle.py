"""experiences.lifecycle: edits, activation checks, the status machine, phases, completion."""

from __future__ import annotations

import pytest

from cdp_site.models import Account
from experiences import config, lifecycle
from experiences.models import Assignment, Experience, Phase, Variant
from tests.experiences.lifecycle_helpers import ab_test, audience, codes, goal, segmented

pytestmark = pytest.mark.django_db



# --- creating and editing drafts ------------------------------------------------------------


def test_short_uids_run_a_b_c_per_account_and_variants_0_1(account: Account,
                                                            other_account: Account) -> None:
    first, second = ab_test(account, "one"), ab_test(account, "two")
    elsewhere = ab_test(other_account, "one")
    assert (first.uid, second.uid, elsewhere.uid) == ("a", "b", "a")
    assert list(first.variants.values_list("key", "uid")) == [("control", "0"), ("bold", "1")]
    assert [lifecycle.experience_uid(n) for n in (0, 25, 26, 27, 701, 702)] == [
        "a", "z", "aa", "ab", "zz", "aaa"]


def test_a_draft_is_freely_editable_and_each_change_bumps_the_version(account: Account) -> None:
    exp = ab_test(account)
    version = exp.version
    lifecycle.update_experience(exp, name="Hero banner, take 2", type="segmented",
                                variants=[{"key": "control", "base": True},
                                          {"key": "bold"}])
    exp.refresh_from_db()
    assert exp.name == "Hero banner, take 2" and exp.type == "segmented"
    assert exp.version == version + 1
    assert exp.phase == 0 and not Phase.objects.filter(experience=exp).exists()


def test_new_variants_get_the_next_uid_and_keep_it_when_renamed(account: Account) -> None:
    exp = ab_test(account)
    lifecycle.update_experience(exp, variants=[
        {"uid": "0", "key": "original", "base": True}, {"key": "bold"}, {"key": "calm"}])
    assert list(exp.variants.values_list("key", "uid")) == [
        ("original", "0"), ("bold", "1"), ("calm", "2")]
    # a swap of keys meets no unique constraint on the way
    lifecycle.update_experience(exp, variants=[
        {"uid": "0", "key": "bold", "base": True}, {"uid": "1", "key": "original"},
        {"key": "calm"}])
    assert list(exp.variants.values_list("key", "uid")) == [
        ("bold", "0"), ("original", "1"), ("calm", "2")]


def test_a_variant_value_defaults_to_its_key_or_an_empty_object(account: Account) -> None:
    exp = ab_test(account, variants=[{"key": "control", "base": True}, {"key": "b"}])
    assert list(exp.variants.values_list("value", flat=True)) == ["control", "b"]
    exp = ab_test(account, "json-one", value_type="json",
                  variants=[{"key": "control", "base": True}, {"key": "b"}])
    assert list(exp.variants.values_list("value", flat=True)) == [{}, {}]


def test_duplicate_experience_key_is_refused(account: Account) -> None:
    ab_test(account)
    with pytest.raises(lifecycle.ExperienceError) as refused:
        ab_test(account)
    assert refused.value.code == "duplicate_key" and refused.value.status == 409
    assert Experience.objects.filter(account=account).count() == 1


def test_duplicate_variant_keys_and_bad_values_are_all_listed(account: Account) -> None:
    with pytest.raises(lifecycle.InvalidExperience) as refused:
        ab_test(account, variants=[{"key": "a", "value": "x", "base": True},
                                   {"key": "a", "value": {"not": "a string"}},
                                   {"key": "c", "value": "y", "weight": 1.5}])
    assert codes(refused.value) == ["duplicate_variant_key", "invalid_value", "invalid_weight"]
    assert not Experience.objects.exists()


def test_json_experiences_need_object_values(account: Account) -> None:
    with pytest.raises(lifecycle.InvalidExperience) as refused:
        ab_test(account, value_type="json",
                variants=[{"key": "control", "value": {"color": "red"}, "base": True},
                          {"key": "b", "value": "blue"}])
    assert codes(refused.value) == ["invalid_value"]


def test_an_unknown_audience_or_goal_is_refused_on_edit(account: Account) -> None:
    with pytest.raises(lifecycle.InvalidExperience) as refused:
        ab_test(account, target="audiences", target_audiences=["nobody"],
                goals=[{"goal": "nothing", "primary": True}])
    assert codes(refused.value) == ["unknown_audience", "unknown_goal"]


# --- activation -----------------------------------------------------------------------------


def test_activation_starts_phase_one_with_an_equal_split(account: Account) -> None:
    exp = lifecycle.activate(ab_test(account))
    assert exp.status == "active" and exp.phase == 1 and exp.activated_at
    phase = Phase.objects.get(experience=exp)
    assert phase.weights == {"control": 0.5, "bold": 0.5} and phase.ended_at is None
    assert phase.variant_keys == ["control", "bold"] and phase.reason == "activated"
    snapshot = config.active_config(account.pk).get("hero-banner")
    assert snapshot.serve == config.SERVE_SPLIT and snapshot.weights == (0.5, 0.5)


def test_activation_lists_every_problem(account: Account) -> None:
    goal(account)
    exp = lifecycle.create_experience(
        account, key="bare", name="Bare", distribution="custom",
        variants=[{"key": "only", "weight": 0.4}], target="audiences")
    with pytest.raises(lifecycle.ActivationError) as refused:
        lifecycle.activate(exp)
    assert refused.value.code == "activation_refused"
    assert codes(refused.value) == ["no_base_variant", "too_few_variants", "weights_not_100",
                                    "no_primary_goal", "no_target_audiences"]
    exp.refresh_from_db()
    assert exp.status == "draft" and exp.phase == 0 and not Phase.objects.exists()


def test_custom_weights_must_sum_to_100_percent(account: Account) -> None:
    exp = ab_test(account, distribution="custom", variants=[
        {"key": "control", "base": True, "weight": 0.3}, {"key": "bold", "weight": 0.6}])
    with pytest.raises(lifecycle.ActivationError) as refused:
        lifecycle.activate(exp)
    assert codes(refused.value) == ["weights_not_100"] and "90 %" in refused.value.message
    lifecycle.update_experience(exp, variants=[{"key": "control", "weight": 0.1 + 0.2},
                                               {"key": "bold", "weight": 0.7}])
    assert lifecycle.activate(exp).status == "active"  # 0.30000000000000004 + 0.7 is 1 ± 1e-9
    assert Phase.objects.get(experience=exp).weights == {"control": 0.1 + 0.2, "bold": 0.7}


def test_custom_weights_need_a_weight_for_each_variant(account: Account) -> None:
    exp = ab_test(account, distribution="custom", variants=[
        {"key": "control", "base": True, "weight": 1.0}, {"key": "bold"}])
    with pytest.raises(lifecycle.ActivationError) as refused:
        lifecycle.activate(exp)
    assert codes(refused.value) == ["missing_weight"]


def test_a_missing_goal_refuses_activation(account: Account) -> None:
    with pytest.raises(lifecycle.ActivationError) as refused:
        lifecycle.activate(ab_test(account, goals=[]))
    assert codes(refused.value) == ["no_primary_goal"]


def test_a_single_goal_is_the_primary_one(account: Account) -> None:
    exp = ab_test(account, goals=["booked"])
    assert exp.experience_goals.get().primary
    with pytest.raises(lifecycle.InvalidExperience) as refused:
        goal(account, "clicked", event="clicked")
        lifecycle.update_experience(exp, goals=[{"goal": "booked", "primary": True},
                                                {"goal": "clicked", "primary": True}])
    assert codes(refused.value) == ["several_primary_goals"]


def test_two_base_variants_refuse_activation(account: Account) -> None:
    exp = ab_test(account, variants=[{"key": "control", "base": True},
                                     {"key": "bold", "base": True}])
    with pytest.raises(lifecycle.ActivationError) as refused:
        lifecycle.activate(exp)
    assert codes(refused.value) == ["several_base_variants"]


def test_target_audiences_must_be_api_accessible(account: Account) -> None:
    audience(account, "vip", api_accessible=False)
    audience(account, "cuisine")
    exp = ab_test(account, target="audiences", target_audiences=["vip", "cuisine"])
    with pytest.raises(lifecycle.ActivationError) as refused:
        lifecycle.activate(exp)
    assert codes(refused.value) == ["audience_not_api_accessible"]
    assert "'vip'" in refused.value.message


def test_an_archived_target_audience_counts_as_unknown(account: Account) -> None:
    gone = audience(account, "gone")
    exp = ab_test(account, target="audiences", target_audiences=["gone"])
    gone.archived = True
    gone.save()
    with pytest.raises(lifecycle.ActivationError) as refused:
        lifecycle.activate(exp)
    assert codes(refused.value) == ["unknown_audience"]


def test_segmented_variants_need_an_api_accessible_audience(account: Account) -> None:
    audience(account, "hidden", api_accessible=False)
    exp = segmented(account, variants=[
        {"key": "base", "base": True}, {"key": "cuisine", "audience": "cuisine"},
        {"key": "hidden", "audience": "hidden"}, {"key": "nobody"}])
    with pytest.raises(lifecycle.ActivationError) as refused:
        lifecycle.activate(exp)
    assert codes(refused.value) == ["audience_not_api_accessible", "missing_audience"]


def test_a_segmented_experience_runs_without_a_goal(account: Account) -> None:
    exp = lifecycle.activate(segmented(account))
    assert Phase.objects.get(experience=exp).weights == {}
    snapshot = config.active_config(account.pk).get("cuisine-banner")
    assert snapshot.serve == config.SERVE_SEGMENTS
    assert [(v.key, v.audience) for v in snapshot.segments] == [("cuisine", "cuisine")]


# --- the status machine ---------------------------------------------------------------------


def test_the_status_machine(account: Account) -> None:
    exp = lifecycle.activate(ab_test(account))
    assert lifecycle.pause(exp).status == "paused"
    assert config.active_config(account.pk).get("hero-banner").served.key == "control"
    assert lifecycle.resume(exp).status == "active"
    assert exp.phase == 1  # pausing keeps the phase
    assert lifecycle.complete(exp).status == "completed"
    assert Phase.objects.get(experience=exp).ended_at is not None


@pytest.mark.parametrize("status,action", [
    ("draft", "pause"), ("draft", "resume"), ("draft", "complete"), ("active", "activate"),
    ("active", "resume"), ("paused", "pause"), ("paused", "activate"),
    ("completed", "activate"), ("completed", "resume"), ("completed", "pause"),
    ("completed", "complete"),
])
def test_other_transitions_are_refused(account: Account, status: str, action: str) -> None:
    exp = ab_test(account)
    for step in {"draft": [], "active": ["activate"], "paused": ["activate", "pause"],
                 "completed": ["activate", "complete"]}[status]:
        lifecycle.ACTIONS[step](exp)
    version = exp.version
    with pytest.raises(lifecycle.TransitionError) as refused:
        lifecycle.ACTIONS[action](exp)
    assert refused.value.code == "invalid_transition" and refused.value.status == 409
    assert f"Cannot {action} an experience that is {status}" in refused.value.message
    exp.refresh_from_db()
    assert exp.status == status and exp.version == version


def test_complete_rolls_the_winner_out_to_everyone(account: Account) -> None:
    exp = lifecycle.activate(ab_test(account))
    lifecycle.complete(exp, winner_key="bold")
    snapshot = config.active_config(account.pk).get("hero-banner")
    assert exp.winner.key == "bold" and snapshot.serve == config.SERVE_WINNER
    assert snapshot.served.key == "bold" and not snapshot.live


def test_complete_with_an_unknown_winner_changes_nothing(account: Account) -> None:
    exp = lifecycle.activate(ab_test(account))
    with pytest.raises(lifecycle.ExperienceError) as refused:
        lifecycle.complete(exp, winner_key="nope")
    assert refused.value.code == "unknown_variant"
    exp.refresh_from_db()
    assert exp.status == "active" and Phase.objects.get(experience=exp).ended_at is None


def test_the_winner_may_be_named_by_uid(account: Account) -> None:
    exp = lifecycle.activate(ab_test(account))
    assert lifecycle.complete(exp, winner_key="1").winner.key == "bold"


# --- while live: the split is locked --------------------------------------------------------


def test_a_weight_change_while_active_starts_a_new_phase(account: Account) -> None:
    exp = lifecycle.activate(ab_test(account))
    lifecycle.update_split(exp, weights={"control": 0.2, "bold": 0.8}, reason="favour bold")
    first, second = Phase.objects.filter(experience=exp).order_by("number")
    assert first.ended_at is not None and second.ended_at is None
    assert second.number == 2 and exp.phase == 2 and second.reason == "favour bold"
    assert second.weights == {"control": 0.2, "bold": 0.8} and exp.distribution == "custom"
    assert config.active_config(account.pk).get("hero-banner").weights == (0.2, 0.8)


def test_a_variant_added_while_active_starts_a_new_phase(account: Account) -> None:
    exp = lifecycle.activate(ab_test(account))
    lifecycle.update_experience(exp, variants=[{"key": "control"}, {"key": "bold"},
                                               {"key": "calm", "value": "Relax"}])
    phase = Phase.objects.get(experience=exp, number=2)
    assert phase.variant_keys == ["control", "bold", "calm"] and phase.reason == "variants changed"
    assert phase.weights == pytest.approx({"control": 1 / 3, "bold": 1 / 3, "calm": 1 / 3})


def test_a_text_change_while_active_keeps_the_phase(account: Account) -> None:
    exp = lifecycle.activate(ab_test(account))
    version = exp.version
    lifecycle.update_experience(exp, name="Renamed", variants=[
        {"key": "control", "content": {"image": "/a.png"}}, {"key": "bold"}])
    assert exp.phase == 1 and Phase.objects.filter(experience=exp).count() == 1
    assert exp.version == version + 1
    assert config.active_config(account.pk).get("hero-banner").variants[0].content == {
        "image": "/a.png"}


def test_an_edit_that_breaks_a_live_experience_is_refused(account: Account) -> None:
    exp = lifecycle.activate(ab_test(account))
    with pytest.raises(lifecycle.InvalidExperience) as refused:
        lifecycle.update_split(exp, weights={"control": 0.5, "bold": 0.2})
    assert codes(refused.value) == ["weights_not_100"]
    assert Phase.objects.filter(experience=exp).count() == 1
    exp.refresh_from_db()
    assert exp.distribution == "equal" and exp.phase == 1


def test_key_and_type_are_locked_once_activated(account: Account) -> None:
    exp = lifecycle.activate(ab_test(account))
    with pytest.raises(lifecycle.ExperienceError) as refused:
        lifecycle.update_experience(exp, key="renamed", type="segmented")
    assert refused.value.code == "locked_field" and "key, type" in refused.value.message


def test_a_variant_with_visitors_cannot_be_removed_while_live(account: Account) -> None:
    exp = lifecycle.activate(ab_test(account))
    bold = exp.variants.get(key="bold")
    Assignment.objects.create(account=account, experience=exp, visitor="v1", variant=bold,
                              phase=1)
    with pytest.raises(lifecycle.ExperienceError) as refused:
        lifecycle.update_experience(exp, variants=[{"key": "control"}, {"key": "calm"}])
    assert refused.value.code == "variant_has_visitors"
    assert Variant.objects.filter(experience=exp, key="bold").exists()


def test_a_completed_experience_only_renames(account: Account) -> None:
    exp = lifecycle.complete(lifecycle.activate(ab_test(account)))
    lifecycle.update_experience(exp, name="Done", description="We learnt a lot")
    with pytest.raises(lifecycle.ExperienceError) as refused:
        lifecycle.update_experience(exp, traffic_allocation=0.5)
    assert refused.value.code == "experience_completed"


def test_an_active_experience_cannot_be_deleted(account: Account) -> None:
    exp = lifecycle.activate(ab_test(account))
    with pytest.raises(lifecycle.TransitionError) as refused:
        lifecycle.delete_experience(exp)
    assert refused.value.code == "experience_active"
    lifecycle.pause(exp)
    lifecycle.delete_experience(exp)
    assert not Experience.objects.exists()
    assert config.active_config(account.pk).get("hero-banner") is None


# --- goals ----------------------------------------------------------------------------------


def test_goal_conditions_use_the_audience_where_shape(account: Account) -> None:
    found = goal(account, "big-booking", event="booked",
                 where=[{"property": "price", "op": ">", "value": 500, "type": "number"}])
    assert found.where[0]["property"] == "price"
    with pytest.raises(lifecycle.InvalidExperience) as refused:
        lifecycle.create_goal(account, key="bad", event="booked", where=[{"price": 5}])
    assert codes(refused.value) == ["invalid_where"]


def test_a_goal_in_use_cannot_be_deleted_and_its_edit_bumps_experiences(account: Account
                                                                        ) -> None:
    exp = lifecycle.activate(ab_test(account))
    booked = exp.goals.get()
    version = exp.version
    lifecycle.update_goal(booked, stream="web")
    exp.refresh_from_db()
    assert exp.version == version + 1
    assert config.active_config(account.pk).get("hero-banner").goals[0].stream == "web"
    with pytest.raises(lifecycle.ExperienceError) as refused:
        lifecycle.delete_goal(booked)
    assert refused.value.code == "goal_in_use"


# --- the caller's object after a change -----------------------------------------------------


def test_the_callers_prefetched_variants_and_audiences_follow_an_update(account: Account
                                                                        ) -> None:
    audience(account, "cuisine")
    audience(account, "travel")
    made = ab_test(account, target="audiences", target_audiences=["cuisine"])
    exp = Experience.objects.prefetch_related("variants", "target_audiences").get(pk=made.pk)
    assert [v.key for v in exp.variants.all()] == ["control", "bold"]
    assert [a.slug for a in exp.target_audiences.all()] == ["cuisine"]
    returned = lifecycle.update_experience(
        exp, target_audiences=["travel"],
        variants=[{"key": "control", "base": True}, {"key": "calm", "value": "Relax"}])
    assert returned is exp
    assert [v.key for v in exp.variants.all()] == ["control", "calm"]
    assert [a.slug for a in exp.target_audiences.all()] == ["travel"]


def test_the_callers_prefetched_phases_follow_activation_and_a_new_split(account: Account
                                                                         ) -> None:
    made = ab_test(account)
    exp = Experience.objects.prefetch_related("phases").get(pk=made.pk)
    assert list(exp.phases.all()) == []
    lifecycle.activate(exp)
    assert [p.number for p in exp.phases.all()] == [1]
    lifecycle.update_split(exp, weights={"control": 0.2, "bold": 0.8})
    assert [(p.number, p.ended_at is None) for p in exp.phases.order_by("number")] == [
        (1, False), (2, True)]
    assert sorted(p.number for p in exp.phases.all()) == [1, 2] and exp.phase == 2


def test_the_callers_cached_winner_follows_completion(account: Account) -> None:
    exp = lifecycle.activate(ab_test(account))
    exp = Experience.objects.select_related("winner").get(pk=exp.pk)
    assert exp.winner is None
    lifecycle.complete(exp, winner_key="bold")
    assert exp.winner is not None and exp.winner.key == "bold"
    assert exp.status == "completed"
