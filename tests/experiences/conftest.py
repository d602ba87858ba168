"""Every experiences test starts and ends with no cached decision config (experiences.config
caches per process, and test transactions roll back without on-commit invalidation)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from experiences import config


@pytest.fixture(autouse=True)
def _fresh_config() -> Iterator[None]:
    config.invalidate()
    yield
    config.invalidate()
