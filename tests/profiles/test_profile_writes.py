"""The profile API writes (issue #14, item 4): PATCH stores the attributes as an event on the
``api`` stream that processing applies with merge operators and identity (and a rebuild
replays); audited with field names only."""

from __future__ import annotations

import json

import pytest

from cdp_site.models import AuditEvent
from profiles.models import RawEvent
from profiles.processing.rebuild import start_rebuild
from tests.profiles.people import EMAIL, known_person
from tests.profiles.privacy_helpers import api
from tests.profiles.processing import run

pytestmark = pytest.mark.django_db


def patch(client, path, body):
    return client.patch(path, body, format="json")


def test_patch_writes_through_the_pipeline_and_a_rebuild_replays_it(account):
    known_person(account)
    client = api(account, "data_manager")
    path = f"/api/v1/profiles/email/{EMAIL}"
    response = patch(client, path, {"attributes": {"loyalty_tier": "platinum",
                                                   "first_name": "Mase"}})
    assert response.status_code == 202, response.content
    assert response.json()["stream"] == "api"
    stored = RawEvent.objects.get(account=account, stream="api")
    assert stored.message == {"loyalty_tier": "platinum", "first_name": "Mase", "email": EMAIL}
    assert client.get(path).json()["fields"]["loyalty_tier"] == "gold"  # not yet processed
    run(account)
    fields = client.get(path).json()["fields"]
    assert (fields["loyalty_tier"], fields["first_name"]) == ("platinum", "Mase")
    [entry] = AuditEvent.objects.filter(action="profile.updated")
    assert entry.changes == {"fields": ["first_name", "loyalty_tier"], "looked_up_by": "email"}
    assert "Mase" not in json.dumps(entry.changes) and EMAIL not in json.dumps(entry.changes)

    start_rebuild(account)
    run(account)
    assert client.get(path).json()["fields"]["loyalty_tier"] == "platinum"


@pytest.mark.parametrize(("body", "code"), [
    ({"attributes": {"no_such_field": 1}}, "unknown_field"),
    ({"attributes": {}}, "invalid_attributes"),
    ({"attributes": "gold"}, "invalid_attributes"),
    ({}, "invalid_attributes"),
    ({"attributes": {"email": "other@example.com"}}, "invalid_attributes"),
])
def test_bad_writes_are_refused_and_store_nothing(account, body, code):
    known_person(account)
    response = patch(api(account, "admin"), f"/api/v1/profiles/email/{EMAIL}", body)
    assert response.status_code == 400, response.content
    assert response.json()["code"] == code
    assert not RawEvent.objects.filter(account=account, stream="api").exists()
    assert not AuditEvent.objects.filter(action="profile.updated").exists()


def test_writes_need_the_right_and_a_known_profile(account):
    known_person(account)
    body = {"attributes": {"loyalty_tier": "x"}}
    for role in ("user_search", "marketer"):
        response = patch(api(account, role), f"/api/v1/profiles/email/{EMAIL}", body)
        assert response.status_code == 403, response.content
    missing = patch(api(account, "admin"), "/api/v1/profiles/email/nobody@example.com", body)
    assert missing.status_code == 404
    assert not RawEvent.objects.filter(account=account, stream="api").exists()
