from __future__ import annotations

from django.urls import include, path, re_path

from cdp_site.api import accounts, views
from cdp_site.api.routers import OptionalSlashRouter

router = OptionalSlashRouter()
router.register("tokens", views.AccessTokenViewSet, basename="token")
router.register("write-keys", views.WriteKeyViewSet, basename="write-key")
router.register("memberships", views.MembershipViewSet, basename="membership")
router.register("invitations", views.InvitationViewSet, basename="invitation")
router.register("audit-log", views.AuditEventViewSet, basename="audit-event")
router.register("roles", views.RoleViewSet, basename="role")
router.register("accounts", accounts.AccountViewSet, basename="account-admin")

urlpatterns = [
    re_path(r"^me/?$", views.MeView.as_view(), name="me"),
    re_path(r"^account/?$", views.AccountView.as_view(), name="account"),
    re_path(r"^dashboard/?$", views.DashboardView.as_view(), name="dashboard"),
    path("", include(router.urls)),
]
