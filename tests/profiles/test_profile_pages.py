"""The profile pages: search by any identifier, the profile page (fields, identifiers, first and
last seen, health, timeline, why identifiers are linked), PII masked for members without PII
view (never sent to their browser), roles, other accounts, merged-away ids, GDPR delete."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from cdp_site.models import Account, AuditEvent
from profiles.models import Profile
from tests.conftest import make_account, make_user
from tests.profiles.people import (
    COOKIE,
    EMAIL,
    PHONE,
    Journey,
    install_schema,
    known_person,
    role_without_pii,
)
from tests.profiles.processing import run, send

pytestmark = pytest.mark.django_db

A, B, X, Y, Z = "ann@example.com", "bob@example.com", "cookie-x", "cookie-y", "cookie-z"


def signed_in(account: Account, *roles: str, name: str = "") -> Client:
    user = make_user(name or "_".join(roles), account, roles)
    client = Client()
    client.force_login(user)
    return client


def text(response) -> str:
    """The page as text, tags removed, whitespace collapsed."""
    html = response.content.decode()
    html = re.sub(r"<(script|style)\b.*?</\1>", " ", html, flags=re.S)
    html = re.sub(r"</(a|code|span|strong)>", "", html)  # inline ends: no space before a colon
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


@pytest.fixture
def person(account: Account) -> Profile:
    return known_person(account).profile()


# --------------------------------------------------------------------------- search


def test_search_by_email_finds_the_profile(account, person):
    client = signed_in(account, "data_manager")
    response = client.get("/profiles/", {"q": EMAIL})
    assert response.status_code == 200
    assert f'href="/profiles/{person.pk}/"' in response.content.decode()
    page = text(response)
    assert EMAIL in page and COOKIE in page
    assert "Most recently seen" not in page


def test_search_by_a_chosen_identifier_field(account, person):
    client = signed_in(account, "user_search")
    html = client.get("/profiles/", {"field": "_uid", "q": COOKIE}).content.decode()
    assert f'data-profile-id="{person.pk}"' in html
    assert '<option value="_uid" selected>' in html
    assert '<option value="email">' in html  # every identifier field is offered
    html = client.get("/profiles/", {"field": "email", "q": COOKIE}).content.decode()
    assert "data-profile-id" not in html
    assert "No profile holds" in html


def test_search_free_text_prefix_and_no_results(account, person):
    client = signed_in(account, "data_manager")
    assert f'data-profile-id="{person.pk}"' in client.get("/profiles/", {"q": "maso"}
                                                          ).content.decode()
    page = text(client.get("/profiles/", {"q": "nobody@example.com"}))
    assert "No profile holds “nobody@example.com”" in page


def test_search_without_a_query_lists_recent_profiles_and_pages(account):
    install_schema(account)
    send(account, *({"_uid": f"c-{i}"} for i in range(30)), stream="default")
    run(account)
    client = signed_in(account, "admin")
    first = client.get("/profiles/").content.decode()
    assert first.count("data-profile-id=") == 25
    assert "Most recently seen profiles" in first
    next_url = re.search(r'href="([^"]+)" data-testid="next-page"', first).group(1)
    second = client.get(next_url.replace("&amp;", "&")).content.decode()
    assert second.count("data-profile-id=") == 5
    assert 'data-testid="next-page"' not in second


def test_an_account_without_profiles_says_so(account):
    page = text(signed_in(account, "admin").get("/profiles/"))
    assert "No profiles yet" in page


def test_search_masks_pii_for_members_without_pii_view(account, person):
    client = signed_in(account, role_without_pii())
    response = client.get("/profiles/", {"q": EMAIL})
    html = response.content.decode()
    assert f'data-profile-id="{person.pk}"' in html
    echoes = (f'value="{EMAIL}"', f"“{EMAIL}”")  # their own query, as they typed it
    for echo in echoes:
        html = html.replace(echo, "")
    assert EMAIL not in html
    assert "m***@example.com" in html
    assert "exact only for PII fields" in html
    # a prefix of a PII value finds nothing for them
    assert "data-profile-id" not in client.get("/profiles/", {"q": "maso"}).content.decode()


# --------------------------------------------------------------------------- the profile page


def test_profile_page_shows_fields_identifiers_health_timeline_and_story(account, person):
    client = signed_in(account, "data_manager")
    response = client.get(f"/profiles/{person.pk}/")
    assert response.status_code == 200
    page = text(response)
    assert f"Profile #{person.pk}" in page
    for value in (EMAIL, COOKIE, "cuisine", "gold", "cooking", "hiking", PHONE, "Mason"):
        assert value in page, value
    html = response.content.decode()
    fields = re.findall(r'data-field="([^"]+)"', html)
    assert fields[:2] == ["email", "_uid"]
    assert set(fields) == {"email", "_uid", "taxonomy", "loyalty_tier", "preferred_activities",
                           "phone", "first_name"}
    identifiers = re.findall(r'data-identifier-field="([^"]+)"', html)
    assert identifiers == ["email", "_uid"]
    assert "No conflicts" in page and "2 of 50 identifiers" in page
    timeline = re.findall(r'<strong class="tl-name">([^<]+)</strong>', html)
    assert timeline == ["record", "identify", "page"]  # newest first
    assert "crm_users" in page and "default" in page
    # why linked: the email came with the identify event, the cookie with the page view
    story = html[html.index('data-testid="identity"'):]
    assert story.count("came with") == 2
    assert "<strong>identify</strong>" in story and "<strong>page</strong>" in story
    assert "No merges, conflicts or compactions" in story


def test_profile_page_masks_pii_and_never_sends_the_raw_values(account, person):
    client = signed_in(account, role_without_pii())
    response = client.get(f"/profiles/{person.pk}/")
    assert response.status_code == 200
    html = response.content.decode()
    for raw in (EMAIL, PHONE, "Mason", "4539", "mason@"):
        assert raw not in html, raw
    page = text(response)
    assert "m***@example.com" in page
    assert "+1-***-**39" in page
    assert "M***" in page
    assert "cuisine" in page and COOKIE in page and "gold" in page  # not PII
    assert "Fields marked PII are masked" in page
    assert 'data-testid="danger-zone"' not in html


def test_user_search_members_see_profiles_with_pii_unmasked(account, person):
    client = signed_in(account, "user_search")
    html = client.get(f"/profiles/{person.pk}/").content.decode()
    assert EMAIL in html and PHONE in html
    assert "Fields marked PII are masked" not in html
    assert 'data-testid="danger-zone"' not in html  # delete: Admins and Data Managers
    assert 'data-section="profiles"' in html
    assert 'data-section="streams"' not in html  # their nav: Profiles only
    assert client.get("/")["Location"] == "/dashboard/"  # the home of every role


@pytest.mark.parametrize("role", ["marketer", "observer", "experience_manager"])
def test_members_without_profile_view_get_the_403_page(account, person, role):
    client = signed_in(account, role)
    for url in ("/profiles/", f"/profiles/{person.pk}/"):
        response = client.get(url)
        assert response.status_code == 403
        assert EMAIL not in response.content.decode()
    assert client.post(f"/profiles/{person.pk}/delete/", {"confirm": "yes"}).status_code == 403
    assert Profile.objects.filter(pk=person.pk).exists()
    assert 'data-section="profiles"' not in client.get("/profiles/").content.decode()


def test_visitors_are_sent_to_sign_in(account, person):
    response = Client().get(f"/profiles/{person.pk}/")
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


def test_a_profile_of_another_account_is_not_found(account, person):
    other = make_account("Globex")
    client = signed_in(other, "admin", name="globex-admin")
    response = client.get(f"/profiles/{person.pk}/")
    assert response.status_code == 404
    assert EMAIL not in response.content.decode()
    assert "data-profile-id" not in client.get("/profiles/", {"q": EMAIL}).content.decode()
    assert client.post(f"/profiles/{person.pk}/delete/", {"confirm": "yes"}).status_code == 404
    assert Profile.objects.filter(pk=person.pk).exists()


def test_a_merged_away_id_opens_the_survivor_with_the_merge_explained(account):
    install_schema(account)
    send(account, {"_uid": X}, stream="default")
    run(account)
    send(account, {"email": A}, stream="default")
    run(account)
    survivor = Profile.objects.get(identifiers__value=X)
    gone = Profile.objects.get(identifiers__value=A)
    send(account, {"email": A, "_uid": X}, stream="default")
    run(account)
    client = signed_in(account, "data_manager")
    response = client.get(f"/profiles/{gone.pk}/")
    assert response.status_code == 302
    assert response["Location"] == f"/profiles/{survivor.pk}/?from={gone.pk}"
    page = client.get(response["Location"])
    html = page.content.decode()
    assert f"Profile #{gone.pk} was merged into this one" in text(page)
    log = html[html.index('data-testid="identity-log"'):]
    assert 'data-kind="merge"' in log
    assert f'href="/profiles/{gone.pk}/">#{gone.pk}</a> merged into this one' in log
    assert X in log


def test_conflicts_show_on_the_page(account):
    install_schema(account)
    send(account, {"email": A, "_uid": X}, {"email": A, "_uid": Y}, {"email": B, "_uid": Z},
         {"email": B, "_uid": Y}, stream="default")
    run(account)
    bob = Profile.objects.get(identifiers__value=B)
    ann = Profile.objects.get(identifiers__value=A)
    page = text(signed_in(account, "admin").get(f"/profiles/{bob.pk}/"))
    assert "1 conflict" in page
    assert f"Not merged with #{ann.pk}: both profiles hold a email." in page
    assert f"{Y} (_uid) stayed with #{ann.pk}" in page


def test_unknown_profile_is_the_404_page(account):
    response = signed_in(account, "admin").get("/profiles/987654/")
    assert response.status_code == 404
    assert "No such profile" in response.content.decode()


def test_timeline_pages(account):
    install_schema(account)
    send(account, *({"_uid": X, "taxonomy": f"t{i}"} for i in range(30)), stream="default")
    run(account)
    pid = Profile.objects.get(identifiers__value=X).pk
    client = signed_in(account, "admin")
    html = client.get(f"/profiles/{pid}/").content.decode()
    assert html.count('class="tl-item"') == 25
    older = re.search(r'href="([^"]+)" data-testid="older-events"', html).group(1)
    rest = client.get(older.replace("&amp;", "&")).content.decode()
    assert rest.count('class="tl-item"') == 5
    assert ">t0<" in rest and ">t29<" in html


# --------------------------------------------------------------------------- GDPR delete


def test_gdpr_delete_from_the_page(account, person):
    other = Journey(account, cookie="visitor-2", email=B)
    other.page_view()
    client = signed_in(account, "data_manager")
    html = client.get(f"/profiles/{person.pk}/").content.decode()
    assert 'data-testid="delete-profile"' in html
    # without the confirmation nothing happens
    response = client.post(f"/profiles/{person.pk}/delete/")
    assert response.status_code == 302 and Profile.objects.filter(pk=person.pk).exists()
    response = client.post(f"/profiles/{person.pk}/delete/", {"confirm": "yes"})
    assert response.status_code == 302
    assert response["Location"] == f"/profiles/?deleted={person.pk}"
    assert not Profile.objects.filter(pk=person.pk).exists()
    assert f"Profile #{person.pk} was deleted" in text(client.get(response["Location"]))
    assert AuditEvent.objects.filter(action="profile.deleted",
                                     target_id=str(person.pk)).exists()
    assert client.get(f"/profiles/{person.pk}/").status_code == 404


def test_user_search_may_not_delete(account, person):
    client = signed_in(account, "user_search")
    assert client.post(f"/profiles/{person.pk}/delete/", {"confirm": "yes"}).status_code == 403
    assert Profile.objects.filter(pk=person.pk).exists()


def test_delete_needs_csrf(account, person):
    user = make_user("dm", account, ["data_manager"])
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    assert client.post(f"/profiles/{person.pk}/delete/", {"confirm": "yes"}).status_code == 403
    assert Profile.objects.filter(pk=person.pk).exists()
