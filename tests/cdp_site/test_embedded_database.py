"""The README's default: with no DATABASE_URL, Strata starts its own PostgreSQL and uses it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_without_database_url_an_embedded_server_is_started_migrated_and_shared(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "XDG_RUNTIME_DIR")}
    env["STRATA_VAR_DIR"] = str(tmp_path / "var")
    tmp_path.chmod(0o755)  # the server runs as its own system user when we are root

    def manage(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True,
            text=True, timeout=300,
        )

    try:
        migrated = manage("migrate", "--noinput")
        assert migrated.returncode == 0, migrated.stderr
        seeded = manage("seed_demo")
        assert seeded.returncode == 0, seeded.stderr
        assert "swk_" in seeded.stdout
        # A second process finds the same server and the same data.
        status = manage("shell", "-c", "from cdp_site.models import Account, Role;"
                        "print(Account.objects.count(), Role.objects.count())")
        assert status.returncode == 0, status.stderr
        assert status.stdout.strip().splitlines()[-1].split() == ["2", "11"]
        assert (tmp_path / "var" / "pgdata" / "PG_VERSION").exists()
    finally:
        stopped = manage("embedded_db", "stop")
        assert "stopped" in stopped.stdout, stopped.stderr
