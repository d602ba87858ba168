"""The access log of ``manage.py serve`` (#18 findings 5 and 15): gunicorn with Strata's logger
class keeps no identifier of the tag's query string and no write key whole."""

from __future__ import annotations

import base64
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from cdp_site.access_log import PRIVATE_QUERY_PREFIXES
from experiences.decisions.middleware import PREFIXES as DECISION_PREFIXES
from profiles.collection.middleware import PREFIXES as COLLECTION_PREFIXES
from tests.cdp_site.servers import gunicorn
from tests.conftest import make_account, make_write_key


def test_the_private_prefixes_cover_every_collection_and_decision_path() -> None:
    for prefix in (*COLLECTION_PREFIXES, *DECISION_PREFIXES, "/personalize/"):
        assert prefix.startswith(PRIVATE_QUERY_PREFIXES), prefix


@pytest.mark.slow
@pytest.mark.own_connection
def test_the_access_log_keeps_no_email_and_no_whole_write_key(transactional_db: Any,
                                                               tmp_path: Path) -> None:
    account = make_account("Logco")
    _key, secret = make_write_key(account)
    log = tmp_path / "access.log"
    with gunicorn("--access-logfile", str(log),
                  "--logger-class", "cdp_site.access_log.AccessLogger") as base:
        tag = requests.get(f"{base}/c/{account.aid}?_e=pv&email=ann%40example.com&_uid=v1",
                           timeout=30)
        basic = base64.b64encode(f"{secret}:".encode()).decode()
        batch = requests.post(f"{base}/v1/batch", json={"batch": [
            {"type": "track", "event": "Signed Up", "userId": "u1"}]},
            headers={"Authorization": f"Basic {basic}"}, timeout=30)
        api = requests.get(f"{base}/api/v1/audit-log/?action=token.created", timeout=30)
        assert tag.status_code < 500 and batch.status_code == 200 and api.status_code == 401
        deadline = time.monotonic() + 30
        while log.read_text().count("\n") < 4:  # the health check and the three
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
    text = log.read_text()
    assert "ann" not in text and "example.com" not in text
    assert f"/c/{account.aid}?…" in text
    assert secret not in text
    assert f" {secret[:12]}… " in text  # the visible prefix, as failed events keep it
    assert "/api/v1/audit-log/?action=token.created" in text  # elsewhere the query stays
