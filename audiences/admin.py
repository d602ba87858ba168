"""Admin for audiences: read-only lists (rules are edited in the builder or the API, which
validate them), with an action to compute the selected audiences again. Feature
``audiences`` of the role matrix."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from audiences import membership
from audiences.editing import rule_text
from audiences.models import Audience, MembershipChange
from cdp_site.admin import AccountScopedAdmin


class ReadOnlyAudienceAdmin(AccountScopedAdmin):
    permission_feature = "audiences"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Audience)
class AudienceAdmin(ReadOnlyAudienceAdmin):
    list_display = ["name", "slug", "status", "size", "computed_at", "version",
                    "api_accessible", "time_relative"]
    list_filter = ["status", "api_accessible", "time_relative", "archived"]
    search_fields = ["name", "slug"]
    readonly_fields = ["text"]
    fields = ["name", "slug", "description", "api_accessible", "text", "rule", "depends_on",
              "time_relative", "version", "status", "progress", "error", "size", "computed_at"]
    actions = ["compute_again"]

    @admin.display(description="rule (text)")
    def text(self, obj: Audience) -> str:
        return rule_text(obj.rule) or "—"

    @admin.action(description="Compute the selected audiences again")
    def compute_again(self, request: HttpRequest, queryset: QuerySet) -> None:
        if not self._allowed(request, "edit"):
            self.message_user(request, "You may not compute audiences.", messages.ERROR)
            return
        for audience in queryset:
            membership.start_compute(audience)
        self.message_user(request, f"{queryset.count()} audience(s) computing in the "
                                   "background.")


@admin.register(MembershipChange)
class MembershipChangeAdmin(ReadOnlyAudienceAdmin):
    list_display = ["at", "audience", "profile_id", "kind", "cause", "raw_event_id"]
    list_filter = ["kind", "cause"]
    list_select_related = ["audience"]
