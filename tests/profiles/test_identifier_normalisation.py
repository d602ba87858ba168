"""One normaliser for identifier values (issue #14, item 2): emails trimmed and compared
case-insensitively, phones in E.164; search, the profile API, suppression and deletion use it.
Values stay stored as received."""

from __future__ import annotations

import pytest

from profiles.identifiers import identifier_hash, normalize_identifier
from profiles.models import Identifier
from tests.profiles.people import COOKIE, EMAIL, known_person
from tests.profiles.privacy_helpers import api

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(("given", "normal"), [
    ("  Ux.Probe@Example.COM ", "ux.probe@example.com"),
    ("+1 (555) 123-4539", "+15551234539"),
    ("+44 20 7946 0958", "+442079460958"),
    ("+12", "+12"),  # not a possible number: kept trimmed
    (" visitor-1 ", "visitor-1"),
    ("Cookie-ABC", "Cookie-ABC"),  # other identifiers keep their case
])
def test_normal_forms(given, normal):
    assert normalize_identifier(given) == normal


def test_equal_values_hash_alike_per_account_and_not_as_the_value():
    assert identifier_hash(1, "Ann@Example.com ") == identifier_hash(1, "ann@example.com")
    assert identifier_hash(1, "+1 555 123 4539") == identifier_hash(1, "+15551234539")
    assert identifier_hash(1, "ann@example.com") != identifier_hash(2, "ann@example.com")
    assert "ann" not in identifier_hash(1, "ann@example.com")


def test_search_and_the_profile_api_find_an_email_whatever_its_case(account):
    known_person(account, email="Ux.Probe@Example.com")
    stored = Identifier.objects.get(account=account, field="email").value
    client = api(account, "data_manager")
    for query in ("ux.probe@example.com", " UX.PROBE@EXAMPLE.COM", stored):
        found = client.get("/api/v1/profiles/", {"q": query}).json()["results"]
        assert len(found) == 1, query
        assert client.get(f"/api/v1/profiles/email/{query.strip()}").status_code == 200
    assert client.get(f"/api/v1/profiles/_uid/{COOKIE.upper()}").status_code == 404
    assert client.get("/api/v1/profiles/", {"q": EMAIL}).json()["results"] == []
