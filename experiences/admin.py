"""Admin for experiences (variants and goals inline) and goals.

Scoped to the current account and permitted by the role matrix (features ``experiences`` and
``goals``) through cdp_site's AccountScopedAdmin. Every write goes through
``experiences.lifecycle``: the experience form and its inlines are gathered into one change, and
a refusal rolls the whole save back and shows every problem as a message, so the admin accepts
exactly what the API does. Activate, pause, resume and complete (with a winner, chosen on an
intermediate page) are actions on the list.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.db import transaction
from django.db.models import Count, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from audiences.models import Audience
from cdp_site.admin import AccountScopedAdmin, ago, request_actor, status_html
from experiences import lifecycle
from experiences.models import Experience, ExperienceGoal, Goal, Variant

REFUSED_FLAG = "_strata_experience_refused"


def _refused(request: HttpRequest, error: lifecycle.ExperienceError) -> None:
    """Show every problem, and undo the whole save."""
    for found in error.problems:
        where = f"{found['field']}: " if found.get("field") else ""
        messages.error(request, f"{where}{found['message']}")
    transaction.set_rollback(True)
    setattr(request, REFUSED_FLAG, True)


# --------------------------------------------------------------------------- inlines


class VariantForm(forms.ModelForm):
    """``value`` is typed as text: kept as text for string experiences, read as JSON for JSON
    ones (when the experience is saved, since the value type may change in the same form)."""

    value = forms.CharField(required=False, widget=forms.TextInput(attrs={"size": 24}),
                            help_text="Text, or JSON for a JSON experience.")

    class Meta:
        model = Variant
        fields = ["key", "name", "value", "content", "is_base", "weight", "audience",
                  "priority"]
        widgets: ClassVar[dict[str, Any]] = {
            "key": forms.TextInput(attrs={"size": 14}),
            "name": forms.TextInput(attrs={"size": 18}),
            "content": forms.Textarea(attrs={"rows": 2, "cols": 28}),
            "weight": forms.NumberInput(attrs={"style": "width: 5em", "step": "any"}),
            "priority": forms.NumberInput(attrs={"style": "width: 4em"}),
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        value = self.instance.value if self.instance.pk else None
        if value is not None:
            self.initial["value"] = value if isinstance(value, str) else json.dumps(value)

    def validate_unique(self) -> None:
        """Left to the lifecycle, which names duplicate keys among the other problems."""


class AccountInline(admin.TabularInline):
    """An inline whose foreign keys offer the current account's rows only."""

    extra = 0

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest,
                                 **kwargs: Any) -> Any:
        actor = request_actor(request)
        related = db_field.related_model
        if actor is not None and related in (Audience, Goal):
            kwargs["queryset"] = related.objects.filter(account=actor.account)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    # Permissions follow the experience (its edit permission covers its variants and goals).
    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return _allowed(request, "experiences.edit")

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return _allowed(request, "experiences.edit")

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return _allowed(request, "experiences.edit")

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return _allowed(request, "experiences.view")


def _allowed(request: HttpRequest, permission: str) -> bool:
    actor = request_actor(request)
    return actor is not None and actor.has(permission)


class VariantInline(AccountInline):
    model = Variant
    form = VariantForm
    fields = ["key", "name", "value", "content", "is_base", "weight", "audience", "priority"]
    ordering = ["position", "id"]


class ExperienceGoalInline(AccountInline):
    model = ExperienceGoal
    fields = ["goal", "primary"]
    verbose_name = "goal"
    verbose_name_plural = "goals (conversion events; one primary)"


# --------------------------------------------------------------------------- experiences


class ExperienceForm(forms.ModelForm):
    class Meta:
        model = Experience
        fields = [*lifecycle.EXPERIENCE_FIELDS, "target_audiences"]

    def validate_unique(self) -> None:
        """Left to the lifecycle (a duplicate key is refused there, as in the API)."""


@admin.register(Experience)
class ExperienceAdmin(AccountScopedAdmin):
    permission_feature = "experiences"
    form = ExperienceForm
    inlines = [VariantInline, ExperienceGoalInline]
    list_display = ["name", "key", "uid", "type_label", "status_badge", "phase",
                    "variant_count", "updated"]
    list_filter = ["status", "type", "distribution"]
    search_fields = ["key", "name"]
    readonly_fields = ["uid", "status", "phase", "winner", "version", "activated_at",
                       "completed_at", "phase_list"]
    fieldsets = [
        (None, {"fields": ["key", "uid", "name", "description", "type", "status", "winner"]}),
        ("Distribution", {"fields": ["distribution", "value_type", "traffic_allocation",
                                     "bandit_interval_minutes", "bandit_burn_in_hours"]}),
        ("Target group", {"fields": ["target", "target_audiences"]}),
        ("Hashing and history", {"classes": ["collapse"],
                                 "fields": ["seed", "hash_version", "phase", "version",
                                            "activated_at", "completed_at", "phase_list"]}),
    ]
    actions = ["activate_experiences", "pause_experiences", "resume_experiences",
               "complete_experiences"]

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).annotate(variants_n=Count("variants"))

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._allowed(request, "delete")

    def formfield_for_manytomany(self, db_field: Any, request: HttpRequest,
                                 **kwargs: Any) -> Any:
        actor = request_actor(request)
        if db_field.name == "target_audiences" and actor is not None:
            kwargs["queryset"] = Audience.objects.filter(account=actor.account,
                                                         archived=False)
        return super().formfield_for_manytomany(db_field, request, **kwargs)

    # -- display

    @admin.display(description="type")
    def type_label(self, obj: Experience) -> str:
        if obj.type == Experience.Type.AB:
            return "bandit" if obj.distribution == Experience.Distribution.BANDIT else "A/B test"
        return "segmented"

    @admin.display(description="status", ordering="status")
    def status_badge(self, obj: Experience) -> SafeString:
        return status_html(obj.status)

    @admin.display(description="variants")
    def variant_count(self, obj: Experience) -> int:
        return getattr(obj, "variants_n", 0)

    @admin.display(description="updated", ordering="updated_at")
    def updated(self, obj: Experience) -> str:
        return ago(obj.updated_at)

    @admin.display(description="phases")
    def phase_list(self, obj: Experience) -> SafeString | str:
        phases = list(obj.phases.order_by("number")) if obj.pk else []
        if not phases:
            return "—"
        return format_html("<ul>{}</ul>", format_html_join("", "<li>{} {} to {}: {} {}</li>", (
            ("phase", p.number, p.ended_at or "now", json.dumps(p.weights), p.reason)
            for p in phases)))

    # -- saving through the lifecycle

    def save_model(self, request: HttpRequest, obj: Experience,
                   form: forms.ModelForm[Experience], change: bool) -> None:
        """Nothing yet: save_related saves the experience with its inlines in one change."""

    def save_related(self, request: HttpRequest, form: forms.ModelForm[Experience],
                     formsets: Any, change: bool) -> None:
        actor = self.actor(request)
        changes = self._changes(form, formsets)
        try:
            if change:
                current = Experience.objects.get(pk=form.instance.pk, account=actor.account)
                lifecycle.update_experience(current, actor, **changes)
            else:
                created = lifecycle.create_experience(actor.account, actor, **changes)
                form.instance.pk, form.instance.uid = created.pk, created.uid
        except lifecycle.ExperienceError as error:
            _refused(request, error)

    def _changes(self, form: forms.ModelForm[Experience], formsets: Any) -> dict[str, Any]:
        data = form.cleaned_data
        changes = {name: data[name] for name in lifecycle.EXPERIENCE_FIELDS if name in data}
        changes["description"] = changes.get("description") or ""
        changes["seed"] = changes.get("seed") or ""
        changes["target_audiences"] = [a.slug for a in data.get("target_audiences") or []]
        for formset in formsets:
            rows = [f for f in formset.forms if f.cleaned_data
                    and not f.cleaned_data.get("DELETE")]
            if formset.model is Variant:
                changes["variants"] = [self._variant(f, changes.get("value_type")) for f in rows]
            elif formset.model is ExperienceGoal:
                changes["goals"] = [{"goal": f.cleaned_data["goal"].key,
                                     "primary": f.cleaned_data.get("primary", False)}
                                    for f in rows if f.cleaned_data.get("goal")]
        return changes

    @staticmethod
    def _variant(form: forms.ModelForm[Variant], value_type: str | None) -> dict[str, Any]:
        data = form.cleaned_data
        text = data.get("value") or ""
        value: Any = text
        if value_type == Experience.ValueType.JSON:
            try:
                value = json.loads(text) if text else {}
            except ValueError:
                value = text  # refused by the lifecycle as not JSON
        variant = {"key": data["key"], "name": data.get("name") or "", "value": value,
                   "content": data.get("content") or {}, "base": data.get("is_base", False),
                   "weight": data.get("weight"), "priority": data.get("priority") or 0,
                   "audience": data["audience"].slug if data.get("audience") else None}
        if form.instance.pk:
            variant["uid"] = form.instance.uid
        return variant

    def construct_change_message(self, request: HttpRequest, form: forms.Form, formsets: Any,
                                 add: bool = False) -> list[dict[str, Any]]:
        """The inlines were saved by the lifecycle, not by their formsets."""
        return [{"added": {}}] if add else [{"changed": {"fields": form.changed_data}}]

    def log_addition(self, request: HttpRequest, obj: Any, message: Any) -> Any:
        return None if getattr(request, REFUSED_FLAG, False) else \
            super().log_addition(request, obj, message)

    def log_change(self, request: HttpRequest, obj: Any, message: Any) -> Any:
        return None if getattr(request, REFUSED_FLAG, False) else \
            super().log_change(request, obj, message)

    def response_add(self, request: HttpRequest, obj: Experience,
                     post_url_continue: str | None = None) -> HttpResponse:
        if getattr(request, REFUSED_FLAG, False):
            return HttpResponseRedirect(request.get_full_path())
        return super().response_add(request, obj, post_url_continue)

    def response_change(self, request: HttpRequest, obj: Experience) -> HttpResponse:
        if getattr(request, REFUSED_FLAG, False):
            return HttpResponseRedirect(request.get_full_path())
        return super().response_change(request, obj)

    def delete_model(self, request: HttpRequest, obj: Experience) -> None:
        try:
            lifecycle.delete_experience(obj, self.actor(request))
        except lifecycle.ExperienceError as error:
            messages.error(request, error.message)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet) -> None:
        for obj in queryset:
            self.delete_model(request, obj)

    # -- actions

    def _run(self, request: HttpRequest, queryset: QuerySet, name: str,
             done: str, **kwargs: Any) -> None:
        ok = 0
        for exp in queryset:
            try:
                lifecycle.ACTIONS[name](exp, self.actor(request), **kwargs)
                ok += 1
            except lifecycle.ExperienceError as error:
                problems = "; ".join(p["message"] for p in error.problems)
                self.message_user(request, f"{exp.name}: {problems}"
                                  if error.code == "activation_refused" or len(error.problems)
                                  > 1 else f"{exp.name}: {error.message}", messages.ERROR)
        if ok:
            self.message_user(request, f"{done} {ok} experience(s).", messages.SUCCESS)

    @admin.action(description="Activate selected experiences", permissions=["change"])
    def activate_experiences(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._run(request, queryset, "activate", "Activated")

    @admin.action(description="Pause selected experiences", permissions=["change"])
    def pause_experiences(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._run(request, queryset, "pause", "Paused")

    @admin.action(description="Resume selected experiences", permissions=["change"])
    def resume_experiences(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._run(request, queryset, "resume", "Resumed")

    @admin.action(description="Complete selected experiences (choose winners)",
                  permissions=["change"])
    def complete_experiences(self, request: HttpRequest, queryset: QuerySet
                             ) -> HttpResponse | None:
        """An intermediate page picks each experience's winner (or none: the base)."""
        experiences = list(queryset.prefetch_related("variants"))
        if request.POST.get("apply"):
            for exp in experiences:
                winner = request.POST.get(f"winner-{exp.pk}") or None
                self._run(request, Experience.objects.filter(pk=exp.pk), "complete",
                          "Completed", winner_key=winner)
            return None
        return TemplateResponse(request, "admin/experiences/experience/complete.html", {
            **self.admin_site.each_context(request),
            "title": "Complete experiences", "opts": self.model._meta,
            "experiences": [(exp, sorted(exp.variants.all(), key=lambda v: v.position))
                            for exp in experiences],
            "action_checkbox_name": ACTION_CHECKBOX_NAME,
            "changelist_url": reverse("admin:experiences_experience_changelist"),
        })


# --------------------------------------------------------------------------- goals


class GoalForm(forms.ModelForm):
    """Saved by ``lifecycle`` when cleaned: its problems become the form's errors."""

    account: Any = None
    actor: Any = None
    saved: Goal | None = None

    class Meta:
        model = Goal
        fields = ["key", "name", "description", "event", "where", "stream"]

    def validate_unique(self) -> None:
        """Left to the lifecycle."""

    def clean(self) -> dict[str, Any] | None:
        data = super().clean()
        if data is None or self.errors or self.account is None:
            return data
        values = {name: data.get(name) for name in self._meta.fields or ()}
        values["where"] = values["where"] if values["where"] is not None else []
        for name in ("description", "stream"):
            values[name] = values[name] or ""
        try:
            if self.instance.pk:
                self.saved = lifecycle.update_goal(Goal.objects.get(pk=self.instance.pk),
                                                   self.actor, **values)
            else:
                self.saved = lifecycle.create_goal(self.account, self.actor, **values)
        except lifecycle.ExperienceError as error:
            for found in error.problems:
                field = found.get("field")
                self.add_error(field if field in self.fields else None, found["message"])
        return data


@admin.register(Goal)
class GoalAdmin(AccountScopedAdmin):
    permission_feature = "goals"
    form = GoalForm
    list_display = ["name", "key", "event", "stream", "used_by"]
    search_fields = ["key", "name", "event"]

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._allowed(request, "delete")

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False,
                 **kwargs: Any) -> type[forms.ModelForm]:
        form = super().get_form(request, obj, change=change, **kwargs)
        actor = request_actor(request)
        return type(form.__name__, (form,), {"account": actor.account if actor else None,
                                             "actor": actor})

    @admin.display(description="used by")
    def used_by(self, obj: Goal) -> str:
        return ", ".join(sorted(obj.experiences.values_list("key", flat=True))) or "—"

    def save_form(self, request: HttpRequest, form: GoalForm, change: bool) -> Any:
        return form.saved

    def save_model(self, request: HttpRequest, obj: Any, form: forms.Form, change: bool
                   ) -> None:
        """Saved by the lifecycle when the form was cleaned."""

    def save_related(self, request: HttpRequest, form: forms.Form, formsets: Any,
                     change: bool) -> None:
        """No relations to save."""

    def delete_model(self, request: HttpRequest, obj: Goal) -> None:
        try:
            lifecycle.delete_goal(obj, self.actor(request))
        except lifecycle.ExperienceError as error:
            messages.error(request, error.message)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet) -> None:
        for obj in queryset:
            self.delete_model(request, obj)
