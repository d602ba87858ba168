"""strata.js stays small and is served from Strata with the headers a tag needs."""

from __future__ import annotations

import gzip

from django.test import Client

from profiles.collection.views.tag import tag_path

BUDGET = 8 * 1024


def test_strata_js_is_under_8_kb_gzipped() -> None:
    source = tag_path().read_bytes()
    size = len(gzip.compress(source, 9))
    assert size < BUDGET, f"strata.js is {size} bytes gzipped; the budget is {BUDGET}"


def test_strata_js_has_no_imports_or_requires() -> None:
    text = tag_path().read_text()
    assert "import " not in text.split("*/", 1)[1]
    assert "require(" not in text


def test_strata_js_is_served_with_script_headers(client: Client) -> None:
    response = client.get("/strata.js")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/javascript; charset=utf-8"
    assert "max-age=14400" in response["Cache-Control"]
    assert "public" in response["Cache-Control"]
    assert response["Access-Control-Allow-Origin"] == "*"
    assert response["ETag"]
    assert "Set-Cookie" not in response
    assert response.content == tag_path().read_bytes()


def test_strata_js_is_gzipped_for_clients_that_accept_it(client: Client) -> None:
    response = client.get("/strata.js", HTTP_ACCEPT_ENCODING="gzip, deflate, br")
    assert response["Content-Encoding"] == "gzip"
    assert "Accept-Encoding" in response["Vary"]
    assert gzip.decompress(response.content) == tag_path().read_bytes()
    assert len(response.content) < BUDGET


def test_strata_js_revalidates_with_its_etag(client: Client) -> None:
    etag = client.get("/strata.js")["ETag"]
    response = client.get("/strata.js", HTTP_IF_NONE_MATCH=etag)
    assert response.status_code == 304
    assert response.content == b""


def test_strata_js_answers_head_and_refuses_post(client: Client) -> None:
    assert client.head("/strata.js").status_code == 200
    assert client.post("/strata.js").status_code == 405

