"""A pytest plugin (``-p tests.embedded_server`` in pyproject's addopts): with DATABASE_URL
unset, the suite runs on the embedded server in var/pgdata, started here before pytest-django
reads the settings (importing the settings starts nothing)."""

from __future__ import annotations

import pytest

from cdp_site.embedded_db import use_embedded_server


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests() -> None:
    use_embedded_server()
