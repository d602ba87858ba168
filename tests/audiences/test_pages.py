"""The audience pages through Django's test client: who may open what, what each page shows,
and that a member without PII view never receives a raw PII value."""

from __future__ import annotations

import json
import re

import pytest
from django.test import Client

from audiences.models import Audience
from tests.audiences.page_data import EMAIL, MASKED_EMAIL, OTHER_EMAIL, build_world, users
from tests.conftest import make_account

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(account):
    return build_world(account)


@pytest.fixture
def people(account):
    return users(account)


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def text(response) -> str:
    return response.content.decode()


def test_nav_and_permissions(world, people) -> None:
    marketer = client_for(people["marketer"])
    page = marketer.get("/audiences/")
    assert page.status_code == 200
    assert 'data-section="audiences"' in text(page)
    assert 'aria-current="page">Audiences' in text(page)

    dora = client_for(people["data_manager"])  # no audiences.view
    assert 'data-section="audiences"' not in text(dora.get("/streams/"))
    for url in ("/audiences/", "/audiences/cuisine/", "/audiences/cuisine/members.csv",
                "/audiences/cuisine/why/?q=1", "/audiences/new/"):
        assert dora.get(url).status_code == 403, url

    observer = client_for(people["observer"])  # view only
    assert observer.get("/audiences/cuisine/").status_code == 200
    assert observer.get("/audiences/new/").status_code == 403
    assert observer.get("/audiences/cuisine/edit/").status_code == 403
    assert observer.get("/audiences/builder/values/?field=taxonomy").status_code == 403
    assert 'data-testid="edit-audience"' not in text(observer.get("/audiences/cuisine/"))
    assert 'data-testid="danger-zone"' not in text(observer.get("/audiences/cuisine/"))
    assert 'data-testid="danger-zone"' in text(client_for(people["admin"]).get(
        "/audiences/cuisine/"))

    assert Client().get("/audiences/").status_code == 302  # to sign in


def test_list_shows_sizes_trends_and_the_rule(world, people) -> None:
    page = text(client_for(people["marketer"]).get("/audiences/"))
    row = re.search(r'<tr class="row" data-audience="cuisine">.*?</tr>', page, re.S).group(0)
    assert "Cuisine readers" in row
    assert 'data-testid="size">2<' in row
    assert "<svg class=\"sparkline\"" in row
    assert "+2" in row  # 0 -> 2 over the window
    assert "taxonomy = &quot;cuisine&quot;" in row
    known = re.search(r'data-audience="known_cooks">.*?</tr>', page, re.S).group(0)
    assert "API" in known
    filtered = text(client_for(people["marketer"]).get("/audiences/?q=known"))
    assert 'data-audience="known_cooks"' in filtered
    assert 'data-audience="cuisine"' not in filtered


def test_audience_page_masks_members_without_pii_view(world, people) -> None:
    marketer = text(client_for(people["marketer"]).get("/audiences/known_cooks/"))
    assert "FILTER AND(INCLUDE cuisine, EXISTS email)" in marketer
    assert "&quot;op&quot;: &quot;include&quot;" in marketer  # the JSON form
    assert MASKED_EMAIL in marketer
    assert EMAIL not in marketer
    assert "Cuisine readers we can email." in marketer
    assert 'id="size-data"' in marketer
    chart = json.loads(re.search(r'<script id="size-data" type="application/json">(.*?)</script>',
                                 marketer, re.S).group(1))
    assert chart["values"] == [1]

    admin = text(client_for(people["admin"]).get("/audiences/known_cooks/"))
    assert EMAIL in admin
    cuisine = text(client_for(people["admin"]).get("/audiences/cuisine/"))
    assert "Known cooks" in cuisine  # used by


def test_unknown_archived_and_other_accounts_audiences_are_not_found(world, people) -> None:
    other = make_account("Globex")
    Audience.objects.create(account=other, slug="theirs", name="Theirs",
                            rule={"consent": "email"})
    Audience.objects.filter(slug="known_cooks").update(archived=True)
    client = client_for(people["admin"])
    for url in ("/audiences/nope/", "/audiences/theirs/", "/audiences/known_cooks/",
                "/audiences/theirs/members.csv", "/audiences/theirs/why/?q=1",
                "/audiences/theirs/edit/"):
        assert client.get(url).status_code == 404, url
    assert 'data-audience="known_cooks"' not in text(client.get("/audiences/"))


def test_why_by_id_and_by_identifier(world, people) -> None:
    cook = world.profiles["cook"]
    traveller = world.profiles["traveller"]
    admin = client_for(people["admin"])

    page = text(admin.get(f"/audiences/known_cooks/why/?q={cook.pk}"))
    assert "is in</strong>" in page
    assert re.search(r'data-path="and\[0\]" data-result="true"', page)
    assert re.search(r'data-path="and\[1\]" data-result="true"', page)
    assert EMAIL in page  # the value of EXISTS email, unmasked for an admin
    assert "Member since" in page

    by_email = text(admin.get(f"/audiences/known_cooks/why/?q={OTHER_EMAIL}"))
    assert f"Profile #{traveller.pk}" in by_email
    assert "is not in</strong>" in by_email
    assert re.search(r'data-path="and\[0\]" data-result="false"', by_email)
    assert "not a member" in by_email
    assert "Not a member now." in by_email

    missing = admin.get("/audiences/known_cooks/why/?q=nobody@example.com")
    assert missing.status_code == 404
    assert "No profile is" in text(missing)


def test_why_masks_pii_values_but_not_results(world, people) -> None:
    cook = world.profiles["cook"]
    page = text(client_for(people["marketer"]).get(f"/audiences/known_cooks/why/?q={cook.pk}"))
    assert re.search(r'data-path="and\[1\]" data-result="true"', page)
    assert MASKED_EMAIL in page
    assert EMAIL not in page
    # an identifier lookup answers with the same masked page
    by_email = text(client_for(people["marketer"]).get(f"/audiences/known_cooks/why/?q={EMAIL}"))
    assert f"Profile #{cook.pk}" in by_email
    assert by_email.count(EMAIL) == 1  # only in the search box the member typed it into
    assert f'value="{EMAIL}"' in by_email


def test_profile_audiences_page_and_profile_link(world, people) -> None:
    cook = world.profiles["cook"]
    traveller = world.profiles["traveller"]
    admin = client_for(people["admin"])
    page = text(admin.get(f"/audiences/profile/{cook.pk}/"))
    assert "In 2 audiences now" in page
    assert re.search(r'data-audience="cuisine" data-member="true"', page)
    assert f"/audiences/known_cooks/why/?q={cook.pk}" in page
    other = text(admin.get(f"/audiences/profile/{traveller.pk}/"))
    assert "In 0 audiences now" in other
    assert "Does not match" in other
    assert admin.get("/audiences/profile/999999999/").status_code == 404

    profile_page = text(admin.get(f"/profiles/{cook.pk}/"))
    assert f'href="/audiences/profile/{cook.pk}/"' in profile_page
    dora = text(client_for(people["data_manager"]).get(f"/profiles/{cook.pk}/"))
    assert "profile-audiences-link" not in dora  # her roles cannot open it


def test_builder_page_offers_the_schema_and_the_operators(world, people) -> None:
    page = client_for(people["marketer"]).get("/audiences/new/")
    assert page.status_code == 200
    catalog = json.loads(re.search(
        r'<script id="builder-catalog" type="application/json">(.*?)</script>',
        text(page), re.S).group(1))
    fields = {f["name"]: f for f in catalog["fields"]}
    assert fields["taxonomy"]["type"] == "string"
    assert fields["preferred_activities"]["kind"] == "set"
    assert fields["email"]["masked"] is True
    ops = {o["name"]: o for o in catalog["operators"]}
    assert ops["intersects"]["kinds"] == ["set"]
    assert ops["between"]["shape"] == "pair"
    assert {a["slug"] for a in catalog["audiences"]} == {"cuisine", "known_cooks"}
    assert catalog["events"] == ["added_to_cart"]
    assert catalog["purposes"] == ["email"]

    edit = text(client_for(people["marketer"]).get("/audiences/known_cooks/edit/"))
    config = json.loads(re.search(
        r'<script id="builder-config" type="application/json">(.*?)</script>',
        edit, re.S).group(1))
    assert config["rule"] == world.audiences["known_cooks"].rule
    assert config["audience"]["slug"] == "known_cooks"
    edit_catalog = json.loads(re.search(
        r'<script id="builder-catalog" type="application/json">(.*?)</script>',
        edit, re.S).group(1))
    assert {a["slug"] for a in edit_catalog["audiences"]} == {"cuisine"}  # not itself


def test_builder_samples(world, people) -> None:
    marketer = client_for(people["marketer"])
    taxonomy = marketer.get("/audiences/builder/values/?field=taxonomy").json()
    assert taxonomy["scanned"] == 3
    assert taxonomy["with_value"] == 3
    assert {v["value"]: v["count"] for v in taxonomy["values"]} == {
        "cuisine": 1, "Cuisine": 1, "travel": 1}
    activities = marketer.get("/audiences/builder/values/?field=preferred_activities").json()
    assert "Parasailing" in [v["value"] for v in activities["values"]]
    email = marketer.get("/audiences/builder/values/?field=email").json()
    assert email == {"values": [], "hidden": True}
    admin_email = client_for(people["admin"]).get(
        "/audiences/builder/values/?field=email").json()
    assert {v["value"] for v in admin_email["values"]} == {EMAIL, OTHER_EMAIL}
    cart = marketer.get("/audiences/builder/values/?event=added_to_cart").json()
    props = {p["name"]: p for p in cart["properties"]}
    assert props["price"]["type"] == "number"
    assert props["sku"]["values"] == [{"value": "A1", "count": 1}]
    unknown = marketer.get("/audiences/builder/values/?field=nope')--")
    assert unknown.status_code == 404
    assert unknown.json()["code"] == "unknown_field"
    assert marketer.get("/audiences/builder/values/").status_code == 400
