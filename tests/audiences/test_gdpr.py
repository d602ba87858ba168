"""A GDPR delete of a profile takes its audience memberships (and those of profiles merged into
it) with it: one exit per membership (cause ``delete``), sizes drop, in the deletion's
transaction; a failure there fails the deletion and changes nothing."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import override_settings

from audiences import editing, membership
from audiences.models import Audience, AudienceMembership, MembershipChange
from cdp_site.models import Account, AuditEvent
from profiles import gdpr
from profiles.models import Profile
from tests.audiences.live import lytics_account, process, profile_of
from tests.conftest import make_token, system_actor, token_client
from tests.profiles.privacy_helpers import q_sync

pytestmark = pytest.mark.django_db


@pytest.fixture
def crm(account: Account) -> Account:
    lytics_account(account)
    process(account,
            {"origin": {"email": "ann@example.com"},
             "response": {"loyalty_tier": "Gold", "preferred_activities": ["Hiking"]}},
            {"origin": {"email": "bob@example.com"}, "response": {"loyalty_tier": "Gold"}},
            stream="crm_users")
    return account


def audience(account: Account, slug: str, text: str) -> Audience:
    created = editing.create_audience(account, None, name=slug, slug=slug, text=text,
                                      compute=False)
    membership.compute_audiences(account.pk, [created.pk])
    return Audience.objects.get(pk=created.pk)


def merged_into(survivor: Profile, gold: Audience) -> Profile:
    """A profile merged into the survivor, with a membership left behind (the table has no
    foreign key: nothing in the database keeps it from outliving its profile)."""
    gone = Profile.objects.create(account_id=survivor.account_id, merged_into=survivor,
                                  first_seen=survivor.first_seen, last_seen=survivor.last_seen)
    AudienceMembership.objects.create(account_id=survivor.account_id, audience=gold,
                                      profile=gone)
    Audience.objects.filter(pk=gold.pk).update(size=gold.size + 1)
    return gone


def test_delete_records_an_exit_per_membership_and_sizes_drop(
        crm: Account, monkeypatch: Any, django_capture_on_commit_callbacks: Any) -> None:
    gold = audience(crm, "gold", 'FILTER loyalty_tier = "gold"')
    hikers = audience(crm, "hikers", 'FILTER preferred_activities CONTAINS "hiking"')
    ann = profile_of(crm, "email", "ann@example.com")
    bob = profile_of(crm, "email", "bob@example.com")
    gone = merged_into(ann, gold)
    assert Audience.objects.get(pk=gold.pk).size == 3

    q_sync(monkeypatch)  # the delete request runs as soon as it commits
    client = token_client(make_token(crm, ["data_manager"])[1])
    with django_capture_on_commit_callbacks(execute=True):
        response = client.delete("/api/v1/profiles/email/ann@example.com")
    assert response.status_code == 202, response.content
    done = client.get(f"/api/v1/privacy-requests/{response.json()['id']}/").json()
    assert done["state"] == "done" and done["result"]["merged_profiles"] == 1

    assert not AudienceMembership.objects.filter(profile_id__in=[ann.pk, gone.pk]).exists()
    exits = MembershipChange.objects.filter(cause="delete")
    assert sorted((c.audience_id, c.profile_id, c.kind, c.raw_event_id) for c in exits) == \
        sorted([(gold.pk, ann.pk, "exit", None), (hikers.pk, ann.pk, "exit", None),
                (gold.pk, gone.pk, "exit", None)])
    assert Audience.objects.get(pk=gold.pk).size == 1
    assert Audience.objects.get(pk=hikers.pk).size == 0
    assert set(gold.memberships.values_list("profile_id", flat=True)) == {bob.pk}
    # nothing of the person in the changes: ids only
    assert {c.get_cause_display() for c in exits} == {"profile or audience deleted"}


def test_an_audience_never_computed_keeps_no_size(crm: Account) -> None:
    gold = audience(crm, "gold", 'FILTER loyalty_tier = "gold"')
    Audience.objects.filter(pk=gold.pk).update(size=None)
    ann = profile_of(crm, "email", "ann@example.com")
    gdpr.delete_profile(system_actor(crm), ann)
    assert Audience.objects.get(pk=gold.pk).size is None
    assert MembershipChange.objects.filter(cause="delete").count() == 1


class Refused(RuntimeError):
    pass


def refuse(account_id: int, profile_ids: list[int], now: Any) -> None:
    raise Refused("a downstream app could not remove its rows")


def test_a_failing_hook_fails_the_delete_and_changes_nothing(crm: Account) -> None:
    gold = audience(crm, "gold", 'FILTER loyalty_tier = "gold"')
    ann = profile_of(crm, "email", "ann@example.com")
    before = list(MembershipChange.objects.values_list("id", flat=True))
    hooks = ["audiences.membership.profiles_deleted", "tests.audiences.test_gdpr.refuse"]
    with override_settings(STRATA_PROFILE_DELETED_HOOKS=hooks), pytest.raises(Refused):
        gdpr.delete_profile(system_actor(crm), ann)
    assert Profile.objects.filter(pk=ann.pk).exists()
    assert AudienceMembership.objects.filter(audience=gold, profile=ann).exists()
    assert list(MembershipChange.objects.values_list("id", flat=True)) == before
    assert Audience.objects.get(pk=gold.pk).size == 2
    assert not AuditEvent.objects.filter(action="profile.deleted").exists()


def test_the_audiences_hook_is_installed() -> None:
    from django.conf import settings

    assert "audiences.membership.profiles_deleted" in settings.STRATA_PROFILE_DELETED_HOOKS
