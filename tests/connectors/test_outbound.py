"""Outbound safety against real local servers: internal addresses refused unless the account's
allowlist names them, redirects checked hop by hop, time and size bounds, statuses sorted into
transient and permanent errors."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from connectors import outbound
from connectors.errors import PermanentError, TransientError
from connectors.models import ConnectorSettings
from tests.connectors.builders import allow_local

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:9/", "http://localhost:9/", "http://10.1.2.3/", "http://192.168.0.1/",
    "http://169.254.169.254/latest/meta-data/", "http://[::1]:9/", "http://0.0.0.0:9/",
    "http://100.64.0.1/", "http://[::ffff:127.0.0.1]:9/",
])
def test_internal_addresses_are_refused_without_allowlist(account: Any, url: str) -> None:
    with pytest.raises(PermanentError) as caught:
        outbound.request(account.pk, "GET", url)
    assert caught.value.code == "address_not_allowed"


def test_allowlisted_local_server_is_reached(account: Any, httpserver: HTTPServer) -> None:
    allow_local(account)
    httpserver.expect_request("/ok").respond_with_json({"fine": True})
    response = outbound.request(account.pk, "GET", httpserver.url_for("/ok"))
    assert response.status == 200 and response.json() == {"fine": True}


def test_allowlist_of_another_account_does_not_count(account: Any, other_account: Any,
                                                     httpserver: HTTPServer) -> None:
    allow_local(other_account)
    with pytest.raises(PermanentError):
        outbound.request(account.pk, "GET", httpserver.url_for("/ok"))


def test_redirect_to_a_private_address_is_refused(account: Any, httpserver: HTTPServer) -> None:
    ConnectorSettings.objects.create(account=account, outbound_allowlist=["localhost"])
    httpserver.expect_request("/go").respond_with_data(
        "", status=302, headers={"Location": "http://127.0.0.1:1/internal"})
    url = httpserver.url_for("/go").replace("127.0.0.1", "localhost")
    with pytest.raises(PermanentError) as caught:
        outbound.request(account.pk, "GET", url)
    assert caught.value.code == "address_not_allowed"


def test_redirect_within_allowlist_is_followed(account: Any, httpserver: HTTPServer) -> None:
    allow_local(account)
    httpserver.expect_request("/old").respond_with_data(
        "", status=307, headers={"Location": "/new"})
    httpserver.expect_request("/new").respond_with_json({"moved": True})
    assert outbound.request(account.pk, "GET", httpserver.url_for("/old")).json() == {
        "moved": True}


def test_response_over_one_megabyte_is_refused(account: Any, httpserver: HTTPServer) -> None:
    allow_local(account)
    httpserver.expect_request("/big").respond_with_data(b"x" * (1024 * 1024 + 1))
    with pytest.raises(PermanentError) as caught:
        outbound.request(account.pk, "GET", httpserver.url_for("/big"))
    assert caught.value.code == "response_too_large"


def test_streamed_response_over_the_bound_is_cut(account: Any, httpserver: HTTPServer) -> None:
    allow_local(account)

    def chunks(_request: Request) -> Response:
        return Response((b"y" * 65536 for _ in range(40)), status=200)  # no Content-Length

    httpserver.expect_request("/stream").respond_with_handler(chunks)
    with pytest.raises(PermanentError) as caught:
        outbound.request(account.pk, "GET", httpserver.url_for("/stream"))
    assert caught.value.code == "response_too_large"


def test_an_endpoint_that_does_not_answer_times_out(account: Any, httpserver: HTTPServer) -> None:
    allow_local(account)
    release = threading.Event()

    def hang(_request: Request) -> Response:
        release.wait(30)
        return Response("late")

    httpserver.expect_request("/slow").respond_with_handler(hang)
    try:
        with pytest.raises(TransientError) as caught:
            outbound.request(account.pk, "GET", httpserver.url_for("/slow"), timeout=0.5)
        assert caught.value.code == "timeout"
    finally:
        release.set()


def test_refused_connection_is_transient(account: Any) -> None:
    allow_local(account)
    with pytest.raises(TransientError) as caught:
        outbound.request(account.pk, "GET", "http://127.0.0.1:1/")
    assert caught.value.code == "connection_failed"


@pytest.mark.parametrize(("status", "headers", "error", "retry_after"), [
    (500, {}, TransientError, None),
    (503, {}, TransientError, None),
    (408, {}, TransientError, None),
    (429, {"Retry-After": "17"}, TransientError, 17.0),
    (400, {}, PermanentError, None),
    (404, {}, PermanentError, None),
])
def test_statuses_are_sorted_into_transient_and_permanent(
        account: Any, httpserver: HTTPServer, status: int, headers: dict[str, str],
        error: type[Exception], retry_after: float | None) -> None:
    allow_local(account)
    httpserver.expect_request("/s").respond_with_data("no", status=status, headers=headers)
    response = outbound.request(account.pk, "GET", httpserver.url_for("/s"))
    with pytest.raises(error) as caught:
        outbound.check_status(response)
    assert getattr(caught.value, "retry_after", None) == retry_after


def test_a_response_that_is_not_json_is_a_permanent_error(account: Any,
                                                          httpserver: HTTPServer) -> None:
    allow_local(account)
    httpserver.expect_request("/html").respond_with_data("<html>", content_type="text/html")
    response = outbound.request(account.pk, "GET", httpserver.url_for("/html"))
    with pytest.raises(PermanentError) as caught:
        response.json()
    assert caught.value.code == "response_not_json"


def test_non_http_schemes_are_refused(account: Any) -> None:
    with pytest.raises(PermanentError) as caught:
        outbound.request(account.pk, "GET", "file:///etc/passwd")
    assert caught.value.code == "invalid_url"
