"""Builders for collection tests: a write key for an account."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from cdp_site import access
from cdp_site.models import Account
from tests.conftest import system_actor


def make_write_key(account: Account, stream: str = "default") -> tuple[Any, str]:
    new = access.create_write_key(
        account=account, actor=system_actor(account), name="test key", stream=stream
    )
    return new.obj, new.secret


@pytest.fixture
def write_key(account: Account) -> str:
    return make_write_key(account)[1]


def basic_auth(secret: str) -> str:
    """The Authorization header Segment's clients send: Basic base64("<key>:")."""
    import base64

    return "Basic " + base64.b64encode(f"{secret}:".encode()).decode()


def stored(account: Account) -> list[Any]:
    """The account's raw events, oldest first."""
    from profiles.models import RawEvent

    return list(RawEvent.objects.for_account(account).order_by("id"))


def failed(account: Account | None = None) -> list[Any]:
    """Failed events of an account (None: those filed under no account), oldest first."""
    from profiles.models import FailedEvent

    events = (FailedEvent.objects.for_account(account) if account is not None
              else FailedEvent.objects.filter(account__isnull=True))
    return list(events.order_by("id"))


def store_state() -> tuple[int, int, int]:
    from profiles.models import MessageId, RawEvent, Stream

    return RawEvent.objects.count(), MessageId.objects.count(), Stream.objects.count()


@contextmanager
def nothing_stored() -> Iterator[None]:
    """The block stores no event, message id or stream (failed events may be added)."""
    before = store_state()
    yield
    assert store_state() == before, "a refused request changed stored data"


def _uri_component(value: str) -> str:
    """JavaScript's encodeURIComponent."""
    from urllib.parse import quote

    return quote(value, safe="-_.!~*'()")


def _js_string(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def jstag_query(data: Any, namespace: str = "") -> str:
    """What the Lytics tag (jstag v3's default serializer) sends for ``data``: nested keys
    flattened with dots; an array as ``key_len`` and ``key_json`` followed by each element
    under the same name; every value as a string."""
    if isinstance(data, list):
        parts = [f"{namespace}_len={len(data)}",
                 f"{namespace}_json={_uri_component(json.dumps(data, separators=(',', ':')))}"]
        parts += [jstag_query(item, namespace) for item in data]
        return "&".join(parts)
    if not isinstance(data, dict):
        return f"{namespace}={_js_string(data)}"  # array elements go unencoded, as jstag does
    parts = []
    for plain, value in data.items():
        key = _uri_component(plain)
        if namespace:
            key = f"{namespace}.{key}"
        if isinstance(value, dict | list):
            parts.append(jstag_query(value, key))
        elif value is not None:
            parts.append(f"{key}={_uri_component(_js_string(value))}")
    return "&".join(parts)
