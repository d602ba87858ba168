from __future__ import annotations

from django.apps import AppConfig


class ExperiencesConfig(AppConfig):
    name = "experiences"
    default_auto_field = "django.db.models.BigAutoField"
