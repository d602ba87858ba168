#!/usr/bin/env python
"""Django's command-line utility for Strata."""

from __future__ import annotations

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cdp_site.settings")
    if sys.argv[1:2] != ["embedded_db"]:  # which only shows or stops the server
        from cdp_site.embedded_db import use_embedded_server

        use_embedded_server()  # without DATABASE_URL: the embedded server in var/pgdata
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
