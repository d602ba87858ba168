"""experiences.decide: each rule and reason, stickiness, consent, the one visitor query."""

from __future__ import annotations

from typing import Any

import pytest

from cdp_site.models import Account
from experiences.bucketing import assign
from experiences.decide import decide
from experiences.models import Assignment, Experience
from profiles.models import Profile
from tests.experiences.decide_helpers import (
    changed,
    make_audience,
    make_experience,
    make_visitor,
    new_phase,
    reweigh,
    set_consent,
    uid_in,
)

pytestmark = pytest.mark.django_db


def one(account: Account, uid: str, key: str, **kwargs: Any) -> Any:
    result = decide(account.pk, uid, keys=[key], **kwargs)
    assert len(result.decisions) == 1
    return result.decisions[0]


def stored(exp: Experience) -> dict[str, str]:
    return dict(Assignment.objects.filter(experience=exp)
                .values_list("visitor", "variant__key"))


def test_a_split_assigns_by_growthbook_hash_and_stores_it(account: Account) -> None:
    exp = make_experience(account, "hero", ["a", "b", "c"], weights=[0.2, 0.3, 0.5])
    uids = [f"visitor-{n}" for n in range(60)]
    for uid in uids:
        decision = one(account, uid, "hero")
        expected = ["a", "b", "c"][assign(exp.uid, uid, [0.2, 0.3, 0.5])]
        assert (decision.variant_key, decision.reason, decision.detail) == (
            expected, "SPLIT", "assigned")
        assert decision.in_experiment
        assert decision.value == expected
        assert decision.content == {"headline": f"{expected} headline"}
    assert stored(exp) == {uid: one(account, uid, "hero").variant_key for uid in uids}
    assert {one(account, uid, "hero").detail for uid in uids} == {"sticky"}
    assert len({stored(exp)[uid] for uid in uids}) == 3
    row = Assignment.objects.get(experience=exp, visitor="visitor-1")
    assert (row.account_id, row.phase, row.profile_id) == (account.pk, 1, None)


def test_the_seed_is_used_when_set(account: Account) -> None:
    exp = make_experience(account, "hero", ["a", "b"])
    changed(exp, seed="custom-seed")
    uid = next(f"u{n}" for n in range(1000)
               if assign("custom-seed", f"u{n}", [0.5, 0.5]) != assign(exp.uid, f"u{n}",
                                                                     [0.5, 0.5]))
    assert one(account, uid, "hero").variant_key == "ab"[assign("custom-seed", uid, [.5, .5])]


def test_a_stored_assignment_survives_a_new_phase_with_other_weights(account: Account) -> None:
    exp = make_experience(account, "hero", ["a", "b"])
    in_a = uid_in(exp.uid, [0.5, 0.5], 0)
    assert one(account, in_a, "hero").variant_key == "a"
    new_phase(exp, {"a": 0.0, "b": 1.0})
    kept = one(account, in_a, "hero")
    assert (kept.variant_key, kept.reason, kept.detail) == ("a", "SPLIT", "sticky")
    newcomer = one(account, "someone-new", "hero")
    assert (newcomer.variant_key, newcomer.detail) == ("b", "assigned")
    assert Assignment.objects.get(experience=exp, visitor="someone-new").phase == 2


def test_bandit_reweighting_moves_new_visitors_only(account: Account) -> None:
    exp = make_experience(account, "bandit", ["a", "b"],
                          distribution=Experience.Distribution.BANDIT)
    early = [f"early-{n}" for n in range(30)]
    before = {uid: one(account, uid, "bandit").variant_key for uid in early}
    assert set(before.values()) == {"a", "b"}
    reweigh(exp, {"a": 0.0, "b": 1.0})
    assert {uid: one(account, uid, "bandit").variant_key for uid in early} == before
    later = {one(account, f"late-{n}", "bandit").variant_key for n in range(30)}
    assert later == {"b"}


def test_traffic_allocation_leaves_visitors_out_with_the_base(account: Account) -> None:
    exp = make_experience(account, "hero", ["a", "b"], traffic_allocation=0.0)
    decision = one(account, "v1", "hero")
    assert (decision.variant_key, decision.reason, decision.detail, decision.in_experiment) == (
        "a", "STATIC", "not_in_traffic", False)
    assert not stored(exp)
    changed(exp, traffic_allocation=0.5)
    outcomes = {one(account, f"v{n}", "hero").detail for n in range(80)}
    assert outcomes == {"assigned", "not_in_traffic"}
    assert all(assign(exp.uid, uid, [0.5, 0.5], 0.5) is not None for uid in stored(exp))


def test_target_audiences_let_only_members_in(account: Account) -> None:
    cuisine = make_audience(account, "cuisine")
    make_experience(account, "hero", ["a", "b"], target_audiences=[cuisine])
    make_visitor(account, "member", audiences=[cuisine])
    make_visitor(account, "outsider")
    assert one(account, "member", "hero").reason == "SPLIT"
    outsider = one(account, "outsider", "hero")
    assert (outsider.variant_key, outsider.reason, outsider.detail) == (
        "a", "STATIC", "not_targeted")
    anonymous = one(account, "never-seen", "hero")
    assert anonymous.detail == "not_targeted"


def test_segmented_first_matching_audience_by_priority_else_base(account: Account) -> None:
    cuisine, travel = make_audience(account, "cuisine"), make_audience(account, "travel")
    make_experience(account, "banner", ["base", "cuisine-banner", "travel-banner"],
                    type=Experience.Type.SEGMENTED,
                    segments={"cuisine-banner": (cuisine, 2), "travel-banner": (travel, 1)})
    make_visitor(account, "cook", audiences=[cuisine])
    make_visitor(account, "both", audiences=[cuisine, travel])
    make_visitor(account, "nobody")
    cook = one(account, "cook", "banner")
    assert (cook.variant_key, cook.reason, cook.detail) == (
        "cuisine-banner", "TARGETING_MATCH", "audience:cuisine")
    assert one(account, "both", "banner").variant_key == "travel-banner"
    base = one(account, "nobody", "banner")
    assert (base.variant_key, base.reason, base.detail) == ("base", "STATIC", "no_segment")
    assert not Assignment.objects.exists()


def test_paused_and_completed_serve_one_variant_to_everyone(account: Account) -> None:
    exp = make_experience(account, "hero", ["a", "b"])
    in_b = uid_in(exp.uid, [0.5, 0.5], 1)
    assert one(account, in_b, "hero").variant_key == "b"
    changed(exp, status=Experience.Status.PAUSED)
    paused = one(account, in_b, "hero")
    assert (paused.variant_key, paused.reason, paused.detail) == ("a", "DISABLED", "paused")
    winner = exp.variants.get(key="b")
    changed(exp, status=Experience.Status.COMPLETED, winner=winner)
    rollout = one(account, "anyone", "hero")
    assert (rollout.variant_key, rollout.reason, rollout.detail) == ("b", "STATIC", "rollout")
    changed(exp, winner=None)
    assert one(account, "anyone", "hero").reason == "DISABLED"


def test_withheld_personalization_consent_means_base_and_no_audiences(account: Account) -> None:
    cuisine = make_audience(account, "cuisine")
    exp = make_experience(account, "hero", ["a", "b"], weights=[0.0, 1.0])
    make_experience(account, "banner", ["base", "cuisine"], type=Experience.Type.SEGMENTED,
                    segments={"cuisine": (cuisine, 1)})
    profile = make_visitor(account, "private", audiences=[cuisine])
    set_consent(profile, "analytics", False)  # another purpose: no effect
    result = decide(account.pk, "private")
    assert result.audiences == ["cuisine"]
    assert [d.variant_key for d in result.decisions] == ["b", "cuisine"]
    Assignment.objects.all().delete()
    set_consent(profile, "personalization", False)
    result = decide(account.pk, "private")
    assert result.audiences == [] and result.consent_withheld
    assert [(d.variant_key, d.reason, d.detail) for d in result.decisions] == [
        ("a", "STATIC", "consent_withheld"), ("base", "STATIC", "consent_withheld")]
    assert not stored(exp)
    set_consent(profile, "personalization", True)
    assert decide(account.pk, "private").audiences == ["cuisine"]


@pytest.mark.parametrize("purpose", ["personalization", "ads"])
def test_the_purpose_is_a_setting(account: Account, settings: Any, purpose: str) -> None:
    settings.STRATA_PERSONALIZATION_PURPOSE = "ads"
    make_experience(account, "hero", ["a", "b"], weights=[0.0, 1.0])
    set_consent(make_visitor(account, "v"), purpose, False)
    assert one(account, "v", "hero").variant_key == ("a" if purpose == "ads" else "b")


def test_only_api_accessible_audiences_are_visible(account: Account) -> None:
    public, private = make_audience(account, "cuisine"), make_audience(
        account, "high-value", api_accessible=False)
    profile = make_visitor(account, "v", audiences=[public, private])
    result = decide(account.pk, "v")
    assert (result.profile_id, result.audiences) == (profile.pk, ["cuisine"])
    other = Account.objects.create(name="Other", slug="other")
    assert decide(other.pk, "v").profile_id is None


def test_identifiers_find_the_profile_before_the_uid(account: Account) -> None:
    cuisine = make_audience(account, "cuisine")
    known = make_visitor(account, "laptop-cookie", email="ann@example.com", audiences=[cuisine])
    result = decide(account.pk, "new-phone-cookie", identifiers={"email": "ann@example.com"})
    assert (result.profile_id, result.audiences) == (known.pk, ["cuisine"])
    assert decide(account.pk, "new-phone-cookie").profile_id is None


def test_a_merged_visitor_keeps_the_variant_of_their_anonymous_cookie(account: Account) -> None:
    exp = make_experience(account, "hero", ["a", "b"])
    laptop = uid_in(exp.uid, [0.5, 0.5], 0, prefix="laptop-")
    phone = uid_in(exp.uid, [0.5, 0.5], 1, prefix="phone-")
    anonymous = make_visitor(account, laptop)
    assert one(account, laptop, "hero").variant_key == "a"
    # The laptop cookie's profile merges into the known (older) one that has the phone cookie.
    known = make_visitor(account, phone, email="ann@example.com")
    Profile.objects.filter(pk=anonymous.pk).update(merged_into=known)
    anonymous.identifiers.update(profile=known)
    kept = one(account, phone, "hero")
    assert (kept.variant_key, kept.detail) == ("a", "sticky")
    assert stored(exp) == {laptop: "a"}
    by_email = one(account, "tablet", "hero", identifiers={"email": "ann@example.com"})
    assert by_email.variant_key == "a"


def test_an_assignment_stored_with_a_merged_away_profile_still_counts(account: Account) -> None:
    exp = make_experience(account, "hero", ["a", "b"])
    old_cookie = uid_in(exp.uid, [0.5, 0.5], 1, prefix="old-")
    new_cookie = uid_in(exp.uid, [0.5, 0.5], 0, prefix="new-")
    anonymous = make_visitor(account, old_cookie)
    assert one(account, old_cookie, "hero").variant_key == "b"
    assert Assignment.objects.get(visitor=old_cookie).profile_id == anonymous.pk
    # The cookie identifier was compacted away; only the profile link remains.
    known = make_visitor(account, new_cookie)
    Profile.objects.filter(pk=anonymous.pk).update(merged_into=known)
    anonymous.identifiers.update(profile=known, active=False)
    assert one(account, new_cookie, "hero").variant_key == "b"


def test_unknown_keys_are_reported_and_every_experience_is_answered_by_default(
        account: Account) -> None:
    make_experience(account, "one")
    make_experience(account, "two", status=Experience.Status.PAUSED)
    make_experience(account, "draft", status=Experience.Status.DRAFT)
    result = decide(account.pk, "v")
    assert [d.experience_key for d in result.decisions] == ["one", "two"]
    result = decide(account.pk, "v", keys=["two", "nope", "draft"])
    assert [d.experience_key for d in result.decisions] == ["two"]
    assert result.missing == ["nope", "draft"]


def statements(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every statement psycopg sends from now on (Django's cursors and plain ones alike)."""
    import psycopg

    sent: list[str] = []
    original = psycopg.Cursor.execute

    def counting(self: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
        sent.append(str(query))
        return original(self, query, *args, **kwargs)

    monkeypatch.setattr(psycopg.Cursor, "execute", counting)
    return sent


def test_a_decision_costs_one_query_plus_one_insert_for_new_assignments(
        account: Account, monkeypatch: pytest.MonkeyPatch, settings: Any) -> None:
    settings.STRATA_EXPERIENCE_CONFIG_TTL = 3600  # no configuration check within the test
    cuisine = make_audience(account, "cuisine")
    for n in range(10):
        make_experience(account, f"exp-{n}", ["a", "b"])
    make_experience(account, "banner", ["base", "c"], type=Experience.Type.SEGMENTED,
                    segments={"c": (cuisine, 1)})
    make_visitor(account, "v", audiences=[cuisine], email="v@example.com")
    decide(account.pk, "warm-the-config-cache")
    sent = statements(monkeypatch)
    decide(account.pk, "v", identifiers={"email": "v@example.com"})
    assert len(sent) == 2 and "INSERT" in sent[1]
    assert Assignment.objects.filter(visitor="v").count() == 10
    sent.clear()
    result = decide(account.pk, "v", identifiers={"email": "v@example.com"})
    assert len(sent) == 1
    assert {d.detail for d in result.decisions} == {"sticky", "audience:cuisine"}
