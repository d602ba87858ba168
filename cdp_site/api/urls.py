from __future__ import annotations

from django.urls import include, path
from rest_framework.routers import SimpleRouter

from cdp_site.api import views

router = SimpleRouter()  # paths end with a slash
router.register("tokens", views.AccessTokenViewSet, basename="token")
router.register("write-keys", views.WriteKeyViewSet, basename="write-key")
router.register("memberships", views.MembershipViewSet, basename="membership")
router.register("audit-log", views.AuditEventViewSet, basename="audit-event")
router.register("roles", views.RoleViewSet, basename="role")

urlpatterns = [
    path("me/", views.MeView.as_view(), name="me"),
    path("account/", views.AccountView.as_view(), name="account"),
    path("dashboard/", views.DashboardView.as_view(), name="dashboard"),
    path("", include(router.urls)),
]
