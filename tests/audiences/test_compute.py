"""Full computation: audiences that do not read each other share one pass, those that do
follow in dependency order, and a failing audience is marked without stopping the others."""

from __future__ import annotations

import pytest

from audiences import context, editing, membership
from audiences.models import Audience, AudienceSize
from cdp_site.models import Account
from tests.audiences.live import changes, lytics_account, members, process, profile_of

pytestmark = pytest.mark.django_db


@pytest.fixture
def crm(account: Account) -> Account:
    lytics_account(account)
    process(account,
            {"origin": {"email": "ann@example.com"},
             "response": {"loyalty_tier": "Gold", "preferred_activities": ["Parasailing"]}},
            {"origin": {"email": "bob@example.com"},
             "response": {"loyalty_tier": "Silver", "preferred_activities": ["Hiking"]}},
            stream="crm_users")
    return account


def make(account: Account, slug: str, text: str) -> Audience:
    return editing.create_audience(account, None, name=slug, slug=slug, text=text,
                                   compute=False)


def test_levels_share_passes_and_follow_dependencies(crm: Account) -> None:
    gold = make(crm, "gold", 'loyalty_tier = "Gold"')
    para = make(crm, "para", 'preferred_activities CONTAINS "parasailing"')
    both = make(crm, "both", "AND(INCLUDE gold, INCLUDE para)")
    neither = make(crm, "neither", "AND(NOT INCLUDE both, EXISTS email)")
    assert [[a.slug for a in g] for g in membership._levels(
        context.audience_order([gold, para, both, neither]))] == [
        ["gold", "para"], ["both"], ["neither"]]
    results = membership.compute_audiences(crm.pk, [gold.pk, para.pk], one_pass=True)
    assert {r.slug: (r.size, r.entries, r.exits) for r in results} == {
        "gold": (1, 1, 0), "para": (1, 1, 0), "both": (1, 1, 0), "neither": (1, 1, 0)}
    ann = profile_of(crm, "email", "ann@example.com")
    bob = profile_of(crm, "email", "bob@example.com")
    assert members(both) == {ann.pk} and members(neither) == {bob.pk}
    assert set(Audience.objects.values_list("status", flat=True)) == {"ready"}
    assert AudienceSize.objects.count() == 4
    # one pass and one audience at a time agree, and a second run changes nothing
    again = membership.compute_audiences(crm.pk, [gold.pk, para.pk], one_pass=True)
    assert all((r.entries, r.exits) == (0, 0) for r in again)
    alone = membership.compute_audiences(crm.pk, [gold.pk, para.pk], one_pass=False)
    assert {r.slug for r in alone} == {"gold", "para", "both", "neither"}
    assert changes(both) == [(ann.pk, "entry", "compute")]


def test_a_failing_audience_is_marked_and_the_others_still_compute(crm: Account) -> None:
    gold = make(crm, "gold", 'loyalty_tier = "Gold"')
    broken = make(crm, "broken", "EXISTS email")
    reader = make(crm, "reader", "INCLUDE broken")
    Audience.objects.filter(pk=broken.pk).update(rule={"field": "removed", "op": "exists"})
    with pytest.raises(membership.ComputeFailed) as caught:
        membership.compute_audiences(crm.pk, [gold.pk, broken.pk], one_pass=True)
    assert set(caught.value.failures) == {"broken", "reader"}
    rows = {a.slug: a for a in Audience.objects.all()}
    assert (rows["gold"].status, rows["gold"].size) == ("ready", 1)
    assert rows["broken"].status == "failed" and "removed" in rows["broken"].error
    assert rows["reader"].status == "failed" and "not computed" in rows["reader"].error
    assert members(gold) == {profile_of(crm, "email", "ann@example.com").pk}
    assert members(reader) == set()
