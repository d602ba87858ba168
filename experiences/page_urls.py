"""Experience pages for marketers (under /experiences/): list and the results page."""

from __future__ import annotations

urlpatterns: list = []
