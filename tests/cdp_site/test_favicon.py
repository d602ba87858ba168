"""Strata serves its own favicon: /favicon.ico (asked for by the admin pages and browsers)
leads to the icon every page links to, so no page logs a 404 for it."""

from __future__ import annotations

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db


def test_favicon_ico_leads_to_the_linked_icon() -> None:
    response = Client().get("/favicon.ico")
    assert response.status_code == 301
    assert response["Location"].endswith("strata/favicon.svg")
    login = Client().get("/admin/login/").content.decode()
    assert 'rel="icon" href="' + response["Location"] + '"' in login
