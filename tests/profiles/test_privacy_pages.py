"""The privacy page and the admin (issue #14): Admins and Data Managers make requests and
follow them; a download of an access document; other roles get 403; the identifier value
never appears once the request ends."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from profiles.models import PrivacyRequest, Profile
from tests.conftest import make_user
from tests.profiles.people import EMAIL, known_person
from tests.profiles.privacy_helpers import q_sync

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _sync(monkeypatch):
    q_sync(monkeypatch)


def signed_in(account, role):
    client = Client()
    client.force_login(make_user(role, account, roles=[role]))
    return client


def test_a_data_manager_makes_an_access_request_and_downloads_the_document(
        account, django_capture_on_commit_callbacks):
    known_person(account)
    client = signed_in(account, "data_manager")
    page = client.get("/privacy/")
    assert page.status_code == 200
    assert b'href="/privacy/"' in page.content  # in the navigation
    with django_capture_on_commit_callbacks(execute=True):
        made = client.post("/privacy/", {"kind": "access", "field": "email", "value": EMAIL})
    assert made.status_code == 302
    request = PrivacyRequest.objects.get(account=account)
    assert request.state == "done" and request.value == ""
    listing = client.get("/privacy/list/").content.decode()
    assert "m***@example.com" in listing and EMAIL not in listing
    assert f'href="/privacy/{request.pk}/document/"' in listing
    assert "hx-trigger" not in listing  # nothing left to poll
    download = client.get(f"/privacy/{request.pk}/document/")
    assert download.status_code == 200
    doc = json.loads(b"".join(download.streaming_content))
    assert doc["identifiers"][0]["value"] in (EMAIL, "visitor-1")


def test_a_waiting_request_is_polled(account):
    client = signed_in(account, "admin")
    client.post("/privacy/", {"kind": "suppress", "value": EMAIL})  # no commit: still waiting
    listing = client.get("/privacy/list/").content.decode()
    assert 'hx-get="/privacy/list/"' in listing and "Received" in listing


def test_bad_input_on_the_page_is_shown_and_nothing_is_made(account):
    client = signed_in(account, "admin")
    response = client.post("/privacy/", {"kind": "delete", "value": "  "})
    assert response.status_code == 400
    assert b"value must be a non-empty identifier value" in response.content
    assert not PrivacyRequest.objects.exists()


@pytest.mark.parametrize("role", ["user_search", "marketer", "observer"])
def test_other_roles_get_403_on_the_page_the_document_and_the_admin(account, role):
    client = signed_in(account, role)
    assert client.get("/privacy/").status_code == 403
    assert client.post("/privacy/", {"kind": "delete", "value": EMAIL}).status_code == 403
    assert client.get("/privacy/1/document/").status_code == 403
    assert client.get("/admin/profiles/privacyrequest/").status_code == 403
    assert not PrivacyRequest.objects.exists()


def test_the_admin_makes_requests_through_the_service_and_never_shows_the_value(
        account, django_capture_on_commit_callbacks):
    known_person(account)
    client = signed_in(account, "admin")
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/admin/profiles/privacyrequest/add/",
                               {"kind": "delete", "field": "", "value": EMAIL,
                                "suppress": "on"})
    assert response.status_code == 302, response.context["adminform"].form.errors
    request = PrivacyRequest.objects.get(account=account)
    assert request.state == "done"
    assert not Profile.objects.filter(account=account).exists()
    refused = client.post("/admin/profiles/privacyrequest/add/",
                          {"kind": "delete", "field": "taxonomy", "value": EMAIL})
    assert refused.status_code == 200 and b"field must name an identifier field" in \
        refused.content
    listing = client.get("/admin/profiles/privacyrequest/").content.decode()
    assert "m***@example.com" in listing and EMAIL not in listing
    detail = client.get(f"/admin/profiles/privacyrequest/{request.pk}/change/")
    assert detail.status_code == 200 and EMAIL not in detail.content.decode()
    assert PrivacyRequest.objects.count() == 1
