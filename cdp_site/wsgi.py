"""The WSGI entry point (gunicorn cdp_site.wsgi:application)."""

from __future__ import annotations

import os

from django.core.wsgi import get_wsgi_application

from cdp_site.embedded_db import use_embedded_server

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cdp_site.settings")
use_embedded_server()  # without DATABASE_URL: the embedded server in var/pgdata
application = get_wsgi_application()
