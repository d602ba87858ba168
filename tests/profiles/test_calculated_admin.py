"""The admin edits calculated attributes through profiles.calculated.attributes (audience
permissions)."""

from __future__ import annotations

import pytest
from django.test import Client

from profiles.models import CalculatedAttribute
from tests.conftest import make_user

pytestmark = pytest.mark.django_db

FORM = {"name": "1_week_page_views", "description": "", "aggregate": "count", "event": "page",
        "property": "", "where": "[]", "window_days": "7", "active": "on"}


def signed_in(account, role):
    client = Client()
    client.force_login(make_user(role, account, roles=[role]))
    return client


def test_the_admin_adds_through_the_service_and_shows_refusals(account):
    manager = signed_in(account, "audience_manager")
    response = manager.post("/admin/profiles/calculatedattribute/add/", FORM)
    assert response.status_code == 302, response.context["adminform"].form.errors
    attr = CalculatedAttribute.objects.get(account=account)
    assert (attr.name, attr.status, attr.revision) == ("1_week_page_views", "pending", 1)
    refused = manager.post("/admin/profiles/calculatedattribute/add/",
                           {**FORM, "name": "revenue", "aggregate": "sum"})
    assert refused.status_code == 200
    assert "sum needs the property it aggregates" in refused.content.decode()
    assert CalculatedAttribute.objects.filter(account=account).count() == 1
    changed = manager.post(f"/admin/profiles/calculatedattribute/{attr.pk}/change/",
                           {**FORM, "window_days": "14"})
    assert changed.status_code == 302
    attr.refresh_from_db()
    assert (attr.window_days, attr.revision) == (14, 2)
    assert manager.get("/admin/profiles/calculatedattribute/").status_code == 200


def test_roles_without_audience_permissions_do_not_see_it(account):
    assert signed_in(account, "data_manager").get(
        "/admin/profiles/calculatedattribute/").status_code == 403
    assert signed_in(account, "observer").post(
        "/admin/profiles/calculatedattribute/add/", FORM).status_code == 403
