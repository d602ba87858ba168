"""The members CSV: every member with every field, PII masked unless the reader has PII view,
formulas defused, streamed."""

from __future__ import annotations

import csv
import io

import pytest
from django.test import Client

from audiences.export import cell, members_csv
from audiences.models import AudienceMembership
from profiles.masking import PiiPolicy
from tests.audiences.page_data import EMAIL, MASKED_EMAIL, build_world, person, users

pytestmark = pytest.mark.django_db


def read(response) -> list[dict[str, str]]:
    body = b"".join(response.streaming_content).decode()
    return list(csv.DictReader(io.StringIO(body)))


def test_csv_download_masks_pii_without_pii_view(account) -> None:
    world = build_world(account)
    people = users(account)
    cook = world.profiles["cook"]

    admin = Client()
    admin.force_login(people["admin"])
    response = admin.get("/audiences/cuisine/members.csv")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert 'attachment; filename="audience-cuisine-' in response["Content-Disposition"]
    rows = read(response)
    assert [r["profile_id"] for r in rows] == sorted(
        str(p.pk) for p in (cook, world.profiles["anonymous_cook"]))
    first = next(r for r in rows if r["profile_id"] == str(cook.pk))
    assert list(first)[:7] == ["profile_id", "member_since", "first_seen", "last_seen",
                               "email", "user_id", "_uid"]  # identifiers by rank, then name
    assert first["email"] == EMAIL
    assert first["taxonomy"] == "cuisine"
    assert first["_uid"] == '["c-1"]'
    # a list is one JSON cell (it starts with "[", so a spreadsheet never runs it)
    assert first["preferred_activities"] == '["Parasailing", "=cmd|\' /C calc\'!A0"]'

    marketer = Client()
    marketer.force_login(people["marketer"])
    response = marketer.get("/audiences/cuisine/members.csv")
    body = b"".join(response.streaming_content).decode()
    assert EMAIL not in body
    assert MASKED_EMAIL in body

    dora = Client()
    dora.force_login(people["data_manager"])
    assert dora.get("/audiences/cuisine/members.csv").status_code == 403


def test_cells() -> None:
    assert cell(None) == ""
    assert cell(True) == "true"
    assert cell(12.5) == "12.5"
    assert cell(-3) == "-3"
    assert cell("-3") == "-3"  # a negative number is not a formula
    assert cell("=1+2") == "'=1+2"
    assert cell("@SUM(A1)") == "'@SUM(A1)"
    assert cell("+33 1 23") == "'+33 1 23"
    assert cell({"b": 1, "a": "x"}) == '{"a": "x", "b": 1}'


def test_a_large_audience_streams_in_chunks(account) -> None:
    world = build_world(account)
    audience = world.audiences["cuisine"]
    AudienceMembership.objects.bulk_create([
        AudienceMembership(account=account, audience=audience,
                           profile=person(account, {"taxonomy": "cuisine",
                                                    "email": f"p{i}@x.io"}))
        for i in range(1200)])
    policy = PiiPolicy(pii_fields=frozenset({"email"}), unmasked=False)
    chunks = list(members_csv(audience, policy))
    assert len(chunks) == 3  # header and 500 rows, 500 rows, the last 202
    rows = list(csv.DictReader(io.StringIO("".join(chunks))))
    assert len(rows) == 1202
    assert all(r["email"] in ("", "j***@example.com") or r["email"].startswith("p***@")
               for r in rows)
