from __future__ import annotations

from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps


class CdpSiteConfig(AppConfig):
    default = True
    name = "cdp_site"
    verbose_name = "Accounts and access"
    default_auto_field = "django.db.models.BigAutoField"


class StrataAdminConfig(admin_apps.AdminConfig):
    """The admin, with Strata's site (members sign in; roles decide what they see)."""

    default = False

    default_site = "cdp_site.admin_site.StrataAdminSite"
