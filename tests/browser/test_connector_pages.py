"""The connector pages in a real browser: a campaign manager creates an authorization (its
signing secret shown once), walks the wizard (kind, authorization, configuration), tests the
connection against a real local receiver, creates the job, and reads its page after a run:
the runs chart drawn, the log, pause and resume. Screenshots land in
test-artifacts/screenshots/."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect
from pytest_httpserver import HTTPServer

from connectors.models import Authorization, Job
from connectors.runner import run_job
from tests.conftest import PASSWORD, make_account, make_user
from tests.connectors.builders import Receiver, allow_local, enter, make_audience, make_person

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


def test_wizard_to_job_page(browser: Any, httpserver: HTTPServer) -> None:
    account = make_account("Demo Travel")
    allow_local(account)
    make_user("cami", account, roles=["campaign_manager"])
    enter(make_audience(account), [make_person(account, n) for n in range(4)])
    page = browser.page
    browser.log_in("cami", PASSWORD)

    browser.goto("/connectors/jobs/")
    expect(page.get_by_test_id("no-jobs")).to_be_visible()
    page.get_by_test_id("authorizations-link").click()
    page.get_by_test_id("auth-name").fill("Partner webhook")
    page.get_by_test_id("auth-url").fill(httpserver.url_for("/"))
    page.get_by_test_id("create-authorization").click()
    secret = page.get_by_test_id("signing-secret").inner_text().strip()
    assert secret.startswith("whsec_")
    browser.shot("authorization-created")
    receiver = Receiver(secret)
    httpserver.expect_request("/hook").respond_with_handler(receiver.handler)
    browser.goto("/connectors/authorizations/")
    assert secret not in page.content()

    browser.goto("/connectors/jobs/new/")
    page.get_by_test_id("kind-select").select_option("audience_webhook")
    page.get_by_test_id("choose-kind").click()
    page.get_by_test_id("job-name").fill("Gold to partner")
    page.get_by_test_id("job-config").fill('{"audience": "gold", "path": "hook", '
                                           '"identifiers": ["email"], "fields": []}')
    page.get_by_test_id("test-connection").click()
    expect(page.get_by_test_id("test-result")).to_contain_text("Connection works")
    browser.shot("wizard-tested")
    page.get_by_test_id("create-job").click()
    expect(page.get_by_test_id("job-title")).to_contain_text("Gold to partner")

    job = Job.objects.get(account=account)
    assert job.authorization == Authorization.objects.get(account=account)
    run_job(job.pk, sleep=lambda _s: None)
    page.reload()
    expect(page.get_by_test_id("runs-table")).to_contain_text("synced")
    page.wait_for_function("() => !!Chart.getChart(document.getElementById('runs-chart'))")
    browser.shot("job-page")
    page.get_by_test_id("action-pause").click()
    expect(page.get_by_test_id("state")).to_have_text("paused")
    page.get_by_test_id("action-resume").click()
    expect(page.get_by_test_id("state")).to_have_text("sleeping")
    assert len(receiver.changes("add")) == 4
    browser.goto("/connectors/jobs/")
    browser.shot("jobs-list")
