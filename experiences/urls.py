"""Every URL of the experiences app; cdp_site.urls includes this at the root."""

from __future__ import annotations

from django.urls import include, path

urlpatterns = [
    path("", include("experiences.decision_urls")),  # /api/v1/decide, /ofrep/v1/…
    path("personalize/", include("experiences.personalize_urls")),  # Personalize Edge API
    path("experiences/", include("experiences.page_urls")),
    path("api/v1/", include("experiences.api.urls")),
]
