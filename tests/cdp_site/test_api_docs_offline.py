"""/api/docs/ works without internet: Swagger UI's scripts, styles and favicon come from Strata
itself (drf-spectacular-sidecar's files, served as static files), never from a CDN."""

from __future__ import annotations

import re

import pytest
from django.contrib.staticfiles import finders
from django.test import Client

pytestmark = pytest.mark.django_db


def test_swagger_ui_assets_are_served_by_strata() -> None:
    page = Client().get("/api/docs/")
    assert page.status_code == 200
    html = page.content.decode()
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert any("swagger-ui-bundle.js" in a for a in assets)
    assert [a for a in assets if a.startswith(("http:", "https:", "//"))] == []
    for asset in assets:
        if asset.startswith("/static/"):
            assert finders.find(asset.removeprefix("/static/")), asset
