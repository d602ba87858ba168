"""Admin for the schema: fields, mappings and route rules of the draft, published versions.

Scoped to the current account and permitted by the role matrix (feature ``schema``) through
cdp_site's AccountScopedAdmin. Every write goes through the services of ``profiles.schema.drafts``
and ``profiles.schema.versions``: a form's clean() hands its values to the service, whose refusal
(with an expression's line and column) becomes the form's errors, so the admin saves exactly
what the API and the pages would. A mapping's change page previews what it would produce for
the stream's latest raw events; versions are read-only, with their snapshot, a revert action
and a page to publish the draft.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Count, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from cdp_site.admin import AccountScopedAdmin, ago, request_actor
from profiles.calculated import attributes as calculated
from profiles.models import (
    CalculatedAttribute,
    Field,
    Mapping,
    PrivacyRequest,
    RouteRule,
    SchemaVersion,
)
from profiles.privacy import requests as privacy_requests
from profiles.schema import drafts, versions
from profiles.schema.api.serializers import count_changes
from profiles.schema.checks import SchemaValidationError

ADMIN_PREVIEW_EVENTS = 10


class SchemaAdmin(AccountScopedAdmin):
    """Feature ``schema``: view, edit (add and change) and delete follow the role matrix;
    saves and deletes go through the schema services."""

    permission_feature = "schema"

    class Media:
        css: ClassVar[dict[str, list[str]]] = {"all": ["strata/schema_admin.css"]}

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._allowed(request, "delete")

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False,
                 **kwargs: Any) -> type[forms.ModelForm]:
        form = super().get_form(request, obj, change=change, **kwargs)
        actor = request_actor(request)
        return type(form.__name__, (form,), {"account": actor.account if actor else None,
                                             "actor": actor})

    def save_form(self, request: HttpRequest, form: SavingForm, change: bool) -> Any:
        return form.saved  # saved by the service when the form was cleaned

    def save_model(self, request: HttpRequest, obj: Any, form: forms.Form, change: bool
                   ) -> None:
        """Nothing left to do: the service saved it."""

    def save_related(self, request: HttpRequest, form: forms.Form, formsets: Any,
                     change: bool) -> None:
        """No many-to-many relations here."""

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet) -> None:
        for obj in queryset:
            self.delete_model(request, obj)


class SavingForm(forms.ModelForm):
    """A ModelForm that a service saves when it is cleaned (SchemaAdmin.get_form gives it the
    account and actor); ``saved`` is what the service saved."""

    account: ClassVar[Any] = None
    actor: ClassVar[Any] = None
    saved: Any = None


class ServiceForm(SavingForm):
    """A ModelForm whose clean() saves through a schema service; the service's problems
    become the form's errors (under the attribute they name) and nothing is saved."""

    def save_through_service(self, data: dict[str, Any]) -> Any:
        raise NotImplementedError

    def clean(self) -> dict[str, Any] | None:
        data = super().clean()
        if data is None or self.errors or self.account is None:
            return data
        try:
            self.saved = self.save_through_service(data)
        except SchemaValidationError as exc:
            for problem in exc.problems:
                attr = problem.attr if problem.attr in self.fields else None
                self.add_error(attr, problem.message)
            if self.instance.pk:
                self.instance.refresh_from_db()  # the service set the refused values on it
        return data


# --------------------------------------------------------------------------- fields


class FieldForm(ServiceForm):
    class Meta:
        model = Field
        fields = list(versions.FIELD_ATTRS)

    def save_through_service(self, data: dict[str, Any]) -> Field:
        attrs = {attr: data.get(attr) for attr in versions.FIELD_ATTRS}
        attrs["description"] = attrs["description"] or ""
        return drafts.save_field(self.account, instance=self.instance if self.instance.pk
                                 else None, actor=self.actor, **attrs)


@admin.register(Field)
class FieldAdmin(SchemaAdmin):
    form = FieldForm
    list_display = ["name", "type", "merge_operator", "identifier", "is_pii", "mapping_count",
                    "updated"]
    list_filter = ["type", "is_identifier", "is_pii"]
    search_fields = ["name", "description"]
    readonly_fields = ["mapping_list"]
    fieldsets = [
        (None, {"fields": ["name", "description", "type", "merge_operator", "capacity",
                           "keep_days"]}),
        ("Identity", {"fields": ["is_identifier", "identifier_rank", "identifier_capacity",
                                 "is_pii"]}),
        ("Mappings", {"fields": ["mapping_list"]}),
    ]

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).annotate(n_mappings=Count("mappings"))

    @admin.display(description="identifier")
    def identifier(self, obj: Field) -> str:
        if not obj.is_identifier:
            return "—"
        return f"rank {obj.identifier_rank}, capacity {obj.identifier_capacity}"

    @admin.display(description="mappings", ordering="n_mappings")
    def mapping_count(self, obj: Field) -> int:
        return getattr(obj, "n_mappings", 0)

    @admin.display(description="updated", ordering="updated_at")
    def updated(self, obj: Field) -> str:
        return ago(obj.updated_at)

    @admin.display(description="mappings")
    def mapping_list(self, obj: Field) -> SafeString | str:
        if not obj.pk:
            return "Save the field, then map it from a stream."
        items = list(obj.mappings.order_by("stream", "id"))
        if not items:
            return "None yet."
        return format_html("<ul class='strata-mappings'>{}</ul>", format_html_join(
            "", "<li><a href='{}'><code>{}</code></a> ← <code>{}</code>{}</li>",
            ((reverse("admin:profiles_mapping_change", args=[m.pk]), m.stream, m.expression,
              f" when {m.guard}" if m.guard else "") for m in items)))

    def delete_model(self, request: HttpRequest, obj: Field) -> None:
        actor = self.actor(request)
        drafts.delete_field(actor.account, obj, actor)


# --------------------------------------------------------------------------- mappings


class MappingForm(ServiceForm):
    class Meta:
        model = Mapping
        fields = ["field", "stream", "expression", "guard"]
        widgets = {"expression": forms.Textarea(attrs={"rows": 2, "cols": 80}),
                   "guard": forms.Textarea(attrs={"rows": 1, "cols": 80})}

    def save_through_service(self, data: dict[str, Any]) -> Mapping:
        return drafts.save_mapping(
            self.account, instance=self.instance if self.instance.pk else None,
            field=data["field"], stream=(data.get("stream") or "").strip(),
            expression=data.get("expression") or "", guard=data.get("guard") or "",
            actor=self.actor)


def preview_table(rows: list[dict[str, Any]], field: Field | None) -> SafeString:
    """A dry run's rows as a small table: event, time, the value (or the error)."""
    def result(row: dict[str, Any]) -> SafeString:
        if row["error"]:
            return format_html("<span class='strata-preview-error'>{}</span>", row["error"])
        if not row["applies"]:
            return format_html("<span class='strata-muted'>{}</span>",
                               "skipped: the guard is not true")
        if row["value"] is None:
            return format_html("<span class='strata-muted'>{}</span>", "no value")
        value = row["value"]
        shown = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        return format_html("<code>{}</code>", shown)

    body = format_html_join("", "<tr><td>{}</td><td>{}</td><td>{}</td></tr>", (
        (row["raw_event_id"], row["event_at"].strftime("%Y-%m-%d %H:%M:%S"), result(row))
        for row in rows))
    return format_html(
        "<table class='strata-preview' data-testid='mapping-preview'><thead><tr>"
        "<th>Raw event</th><th>Event time (UTC)</th><th>Would give{}</th></tr></thead>"
        "<tbody>{}</tbody></table>",
        f" ({field.name}, {field.type})" if field else "", body)


@admin.register(Mapping)
class MappingAdmin(SchemaAdmin):
    form = MappingForm
    list_display = ["field", "stream", "expression", "guard", "updated"]
    list_filter = ["stream"]
    list_select_related = ["field"]
    search_fields = ["field__name", "stream", "expression"]
    fields = ["field", "stream", "expression", "guard", "preview"]
    readonly_fields = ["preview"]

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest,
                                 **kwargs: Any) -> Any:
        if db_field.name == "field":
            actor = request_actor(request)
            kwargs["queryset"] = (Field.objects.for_account(actor.account).order_by("name")
                                  if actor else Field.objects.none())
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    @admin.display(description="updated", ordering="updated_at")
    def updated(self, obj: Mapping) -> str:
        return ago(obj.updated_at)

    @admin.display(description=f"preview (latest {ADMIN_PREVIEW_EVENTS} raw events)")
    def preview(self, obj: Mapping) -> SafeString | str:
        """What the saved mapping would give for the stream's latest raw events (a dry run:
        nothing is stored)."""
        if not obj.pk:
            return "Save the mapping to preview it on the stream's latest events."
        try:
            rows = drafts.preview_mapping(obj.account, stream=obj.stream,
                                          expression=obj.expression, guard=obj.guard,
                                          field=obj.field, limit=ADMIN_PREVIEW_EVENTS)
        except SchemaValidationError as exc:
            return "; ".join(p.message for p in exc.problems)
        if not rows:
            return f"No raw events in {obj.stream} yet."
        return preview_table(rows, obj.field)

    def delete_model(self, request: HttpRequest, obj: Mapping) -> None:
        actor = self.actor(request)
        drafts.delete_mapping(actor.account, obj, actor)


# --------------------------------------------------------------------------- route rules


class RouteRuleForm(ServiceForm):
    class Meta:
        model = RouteRule
        fields = list(versions.ROUTE_ATTRS)
        widgets = {"expression": forms.Textarea(attrs={"rows": 2, "cols": 80})}

    def save_through_service(self, data: dict[str, Any]) -> RouteRule:
        attrs: dict[str, Any] = {attr: data.get(attr) for attr in versions.ROUTE_ATTRS}
        attrs["name"] = attrs["name"] or ""
        attrs["priority"] = attrs["priority"] or 0
        attrs["input_stream"] = (attrs["input_stream"] or "").strip()
        attrs["output_stream"] = (attrs["output_stream"] or "").strip()
        return drafts.save_route_rule(self.account, instance=self.instance if self.instance.pk
                                      else None, actor=self.actor, **attrs)


@admin.register(RouteRule)
class RouteRuleAdmin(SchemaAdmin):
    form = RouteRuleForm
    list_display = ["input_stream", "expression", "output_stream", "priority", "active", "name"]
    list_filter = ["active"]
    search_fields = ["name", "input_stream", "output_stream", "expression"]

    def delete_model(self, request: HttpRequest, obj: RouteRule) -> None:
        actor = self.actor(request)
        drafts.delete_route_rule(actor.account, obj, actor)


# --------------------------------------------------------------------------- versions


@admin.register(SchemaVersion)
class SchemaVersionAdmin(AccountScopedAdmin):
    """Published versions are immutable: read-only here, with the snapshot. The changelist
    links to publishing the draft; an action reverts to a version."""

    permission_feature = "schema"

    class Media:
        css: ClassVar[dict[str, list[str]]] = {"all": ["strata/schema_admin.css"]}

    change_list_template = "admin/profiles/schemaversion/change_list.html"
    list_display = ["version", "published", "published_by", "note", "reverted_from", "counts"]
    list_select_related = ["published_by"]
    fields = ("number", "published_at", "published_by", "note", "reverted_from", "counts",
              "snapshot_json")
    readonly_fields = fields
    actions = ["revert_to_version"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="version", ordering="number")
    def version(self, obj: SchemaVersion) -> str:
        return f"v{obj.number}"

    @admin.display(description="published", ordering="published_at")
    def published(self, obj: SchemaVersion) -> str:
        return ago(obj.published_at)

    @admin.display(description="contents")
    def counts(self, obj: SchemaVersion) -> str:
        snapshot = obj.snapshot or {}
        return (f"{len(snapshot.get('fields', []))} fields, "
                f"{len(snapshot.get('mappings', []))} mappings, "
                f"{len(snapshot.get('route_rules', []))} route rules")

    @admin.display(description="snapshot")
    def snapshot_json(self, obj: SchemaVersion) -> SafeString:
        return format_html("<pre class='strata-json' data-testid='snapshot'>{}</pre>",
                           json.dumps(obj.snapshot, indent=2, ensure_ascii=False))

    @admin.action(description="Revert to the selected version (publish it again)")
    def revert_to_version(self, request: HttpRequest, queryset: QuerySet) -> None:
        if not self._allowed(request, "edit"):
            self.message_user(request, "Your roles do not allow reverting.", messages.ERROR)
            return
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one version to revert to.",
                              messages.WARNING)
            return
        target = queryset.get()
        try:
            actor = self.actor(request)
            version = versions.revert(actor.account, target.number, actor=actor)
        except SchemaValidationError as exc:
            self.message_user(request, exc.problems[0].message, messages.WARNING)
            return
        self.message_user(request, f"Version {target.number} published again as version "
                          f"{version.number if version else '?'}.", messages.SUCCESS)

    def get_urls(self) -> list[Any]:
        publish = self.admin_site.admin_view(self.publish_view)
        return [path("publish/", publish, name="profiles_schemaversion_publish"),
                *super().get_urls()]

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> HttpResponse:
        return super().changelist_view(request, {
            "can_publish": self._allowed(request, "edit"), **(extra_context or {})})

    def publish_view(self, request: HttpRequest) -> HttpResponse:
        """The draft's changes and problems, and a button to publish it."""
        if not self._allowed(request, "edit"):
            raise PermissionDenied
        account = self.actor(request).account
        if request.method == "POST":
            try:
                version = versions.publish(account, actor=self.actor(request),
                                           note=request.POST.get("note", "").strip()[:500])
            except SchemaValidationError as exc:
                for problem in exc.problems[:10]:
                    self.message_user(request, problem.message, messages.ERROR)
            else:
                self.message_user(request, f"Published version {version.number}: processing "
                                  "uses it from now on.", messages.SUCCESS)
                return HttpResponseRedirect(reverse("admin:profiles_schemaversion_changelist"))
        diff = versions.diff_schema(account)
        return TemplateResponse(request, "admin/profiles/schemaversion/publish.html", {
            **self.admin_site.each_context(request),
            "title": "Publish the draft schema",
            "opts": self.model._meta,
            "diff": diff,
            "changes": count_changes(diff),
            "kinds": [(kind, label, diff[kind]) for kind, label in (
                ("fields", "Fields"), ("mappings", "Mappings"), ("route_rules", "Route rules"))],
            "problems": versions.validate_draft(account),
        })


# --------------------------------------------------------------------------- calculated attributes


CALCULATED_FORM_FIELDS = ["name", "description", "aggregate", "event", "property", "where",
                          "window_days", "active"]


class CalculatedAttributeForm(SavingForm):
    """Saves through profiles.calculated.attributes.save_attribute; its refusal becomes the form's
    error (under the attribute it names) and nothing is saved."""

    class Meta:
        model = CalculatedAttribute
        fields = CALCULATED_FORM_FIELDS

    def clean(self) -> dict[str, Any] | None:
        data = super().clean()
        if data is None or self.errors or self.account is None:
            return data
        try:
            self.saved = calculated.save_attribute(
                self.account, {k: data.get(k) for k in CALCULATED_FORM_FIELDS},
                instance=CalculatedAttribute.objects.get(pk=self.instance.pk)
                if self.instance.pk else None, actor=self.actor)
        except calculated.AttributeDefinitionError as exc:
            self.add_error(exc.attr if exc.attr in self.fields else None, exc.message)
        return data


@admin.register(CalculatedAttribute)
class CalculatedAttributeAdmin(SchemaAdmin):
    """Feature ``audiences`` (audience rules read calculated attributes)."""

    permission_feature = "audiences"
    form = CalculatedAttributeForm
    list_display = ["name", "aggregate", "property", "event", "window_days", "active",
                    "status", "computed"]
    list_filter = ["aggregate", "active", "status"]
    search_fields = ["name", "event", "description"]
    readonly_fields = ["status", "progress", "error", "revision", "backfill_started_at",
                       "backfill_finished_at", "computed_at"]

    @admin.display(description="corrected", ordering="computed_at")
    def computed(self, obj: CalculatedAttribute) -> str:
        return ago(obj.computed_at) if obj.computed_at else "—"

    def delete_model(self, request: HttpRequest, obj: CalculatedAttribute) -> None:
        calculated.delete_attribute(obj, self.actor(request))


# --------------------------------------------------------------------------- privacy requests


class PrivacyRequestForm(SavingForm):
    """A new data subject request, made by profiles.privacy.requests (as the API and the
    privacy page make them)."""

    class Meta:
        model = PrivacyRequest
        fields = ["kind", "field", "value", "suppress"]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if self.errors:
            return data
        try:
            self.saved = privacy_requests.create_request(
                self.actor, data.get("kind"), data.get("value"), data.get("field") or "",
                suppress=bool(data.get("suppress")))
        except privacy_requests.PrivacyRequestError as exc:
            raise forms.ValidationError(exc.message, code=exc.code) from None
        self.instance = self.saved
        return data


@admin.register(PrivacyRequest)
class PrivacyRequestAdmin(SchemaAdmin):
    """Data subject requests (Admins, Data Managers: ``profiles.delete``): made here, never
    changed or deleted; the identifier value is never shown (only its masked hint)."""

    permission_feature = "profiles"
    list_display = ["id", "kind", "field", "value_hint", "state", "requested_by_label",
                    "created_at", "finished_at"]
    list_filter = ["kind", "state"]
    readonly = ["kind", "field", "value_hint", "suppress", "state", "result", "error",
                "profile_id", "requested_by_label", "created_at", "started_at", "finished_at"]

    def _allowed(self, request: HttpRequest, level: str) -> bool:
        actor = request_actor(request)
        return actor is not None and actor.has("profiles.delete")

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return self.readonly if obj is not None else ["kind", "field", "value", "suppress"]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return self.readonly if obj is not None else []

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False,
                 **kwargs: Any) -> type[forms.ModelForm]:
        if obj is None:
            kwargs["form"] = PrivacyRequestForm
        return super().get_form(request, obj, change=change, **kwargs)
