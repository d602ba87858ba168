"""The calculated attributes API (under /api/v1/calculated-attributes/)."""

from __future__ import annotations

from django.urls import include, path

from cdp_site.api.routers import OptionalSlashRouter
from profiles.calculated.api import views

router = OptionalSlashRouter()
router.register("calculated-attributes", views.CalculatedAttributeViewSet,
                basename="calculated-attribute")

urlpatterns = [path("", include(router.urls))]
