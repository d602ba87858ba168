"""The audiences admin: read-only lists for audience viewers, a recompute action for editors."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from audiences import editing
from audiences.models import Audience
from cdp_site.models import Account
from tests.audiences.live import lytics_account, run_queued_tasks
from tests.conftest import make_user

pytestmark = pytest.mark.django_db


def signed_in(account: Account, role: str) -> Client:
    client = Client()
    client.force_login(make_user(role, account, roles=[role]))
    return client


def test_list_and_recompute(account: Account, django_capture_on_commit_callbacks: Any) -> None:
    lytics_account(account)
    audience = editing.create_audience(account, None, name="Gold",
                                       text='loyalty_tier = "Gold"', compute=False)
    observer = signed_in(account, "observer")
    page = observer.get("/admin/audiences/audience/")
    assert page.status_code == 200 and "Gold" in page.content.decode()
    detail = observer.get(f"/admin/audiences/audience/{audience.pk}/change/")
    assert 'FILTER loyalty_tier = &quot;Gold&quot;' in detail.content.decode()
    assert signed_in(account, "user_search").get("/admin/audiences/audience/").status_code == 403
    manager = signed_in(account, "audience_manager")
    with django_capture_on_commit_callbacks(execute=True):
        manager.post("/admin/audiences/audience/", {"action": "compute_again",
                                                    "_selected_action": [audience.pk]})
    assert run_queued_tasks() == 1
    assert Audience.objects.get(pk=audience.pk).status == "ready"
