"""Builders for collection tests: a write key for an account."""

from __future__ import annotations

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
