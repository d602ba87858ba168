"""The schema pages (Data Managers and Admins), mounted at /schema/ by profiles.urls
(namespace ``schema``): the draft's fields, mappings and route rules with the problems
``validate_draft`` finds, the difference from the live version with a Publish button (and a
profile rebuild, with its progress), forms to add and change fields, mappings (with an
Evaluate dry run over the stream's latest raw events) and route rules, and the published
versions with revert.

Thin views: forms check shapes only; every edit goes through ``profiles.schema.drafts`` and
every publish and revert through ``profiles.schema.versions``, whose refusals are shown on the
form (with the expression's line and column). Reads are scoped to the actor's current account:
another account's objects are not found.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from django import forms
from django.contrib import messages
from django.http import HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from cdp_site.shell import forbidden, page_actor, render_page, strata_page
from profiles.models import (
    FIELD_NAME_MAX,
    FIELD_TYPE_CHOICES,
    MERGE_OPERATOR_CHOICES,
    Field,
    Mapping,
    RawEvent,
    RouteRule,
    SchemaVersion,
    Stream,
)
from profiles.processing import rebuild
from profiles.schema import drafts, lytics, versions
from profiles.schema.api.serializers import count_changes, evaluation_summary
from profiles.schema.api.views import evaluate_mapping
from profiles.schema.checks import Problem, SchemaValidationError
from profiles.schema.merge import FIELD_TYPES, OPERATORS

if TYPE_CHECKING:
    from django.http import HttpRequest

    from cdp_site.models import Account

EVALUATE_LIMIT = 20
SECTION = "schema"


def _not_found(request: HttpRequest, heading: str) -> HttpResponse:
    return render_page(request, "cdp_site/404.html", {
        "heading": heading, "message": "This account's schema has nothing at this address.",
        "back_url": reverse("schema:overview"), "back_label": "Schema",
    }, section=SECTION, title="Not found", status=404)


# --------------------------------------------------------------------------- forms


class FieldForm(forms.Form):
    name = forms.CharField(max_length=FIELD_NAME_MAX, help_text="Letters, digits and _, as "
                           "mappings, audiences and the API will name it.")
    description = forms.CharField(max_length=500, required=False)
    type = forms.ChoiceField(choices=FIELD_TYPE_CHOICES, initial="string")
    merge_operator = forms.ChoiceField(
        choices=MERGE_OPERATOR_CHOICES, initial="latest",
        help_text="How values from many events fold into the profile's value.")
    capacity = forms.IntegerField(required=False, min_value=1, max_value=2_147_483_647,
                                  help_text="Sets and maps: most values kept (empty: default).")
    keep_days = forms.IntegerField(required=False, min_value=1, max_value=2_147_483_647,
                                   help_text="Values older than this stop counting (empty: "
                                   "forever).")
    is_identifier = forms.BooleanField(required=False, label="Identifier",
                                       help_text="Events carrying the same value belong to the "
                                       "same profile.")
    identifier_rank = forms.IntegerField(required=False, min_value=1, max_value=100,
                                         label="Rank", help_text="1 is the strongest.")
    identifier_capacity = forms.IntegerField(required=False, min_value=1,
                                             max_value=2_147_483_647, label="Capacity",
                                             help_text="Values one profile may hold (email 1, "
                                             "cookies 50).")
    is_pii = forms.BooleanField(required=False, label="PII", help_text="Masked for members "
                                "without PII access.")


class MappingForm(forms.Form):
    field = forms.ChoiceField(choices=())
    stream = forms.CharField(max_length=100)
    expression = forms.CharField(widget=forms.Textarea(attrs={"rows": 2, "spellcheck": "false"}),
                                 strip=False)
    guard = forms.CharField(required=False, strip=False,
                            widget=forms.Textarea(attrs={"rows": 1, "spellcheck": "false"}),
                            help_text="The mapping applies only when this is true, e.g. "
                            "exists(response.loyalty_tier).")

    def __init__(self, *args: Any, account: Account, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.field_choice.choices = [
            (name, f"{name} ({ftype})") for name, ftype in
            Field.objects.for_account(account).order_by("name").values_list("name", "type")]

    @property
    def field_choice(self) -> forms.ChoiceField:
        """The field selector as the ChoiceField it is (``self.fields`` types it as Field)."""
        choice = self.fields["field"]
        assert isinstance(choice, forms.ChoiceField)
        return choice


class RouteRuleForm(forms.Form):
    name = forms.CharField(max_length=200, required=False)
    input_stream = forms.CharField(max_length=100)
    expression = forms.CharField(widget=forms.Textarea(attrs={"rows": 2, "spellcheck": "false"}),
                                 strip=False, help_text='e.g. contains(`_url`, "localhost")')
    output_stream = forms.CharField(max_length=100)
    priority = forms.IntegerField(initial=0, min_value=-1_000_000, max_value=1_000_000,
                                  help_text="Higher runs first.")
    active = forms.BooleanField(required=False, initial=True)


def add_problems(form: forms.Form, problems: list[Problem]) -> dict[str, dict[str, Any]]:
    """A service's refusal shown on the form: each problem under its attribute (or the whole
    form). Returns, per expression attribute, where the first problem is (for a caret)."""
    where: dict[str, dict[str, Any]] = {}
    for problem in problems:
        attr = problem.attr if problem.attr in form.fields else None
        form.add_error(attr, problem.message)
        if attr and problem.line is not None and attr not in where:
            text = str(form.data.get(attr, ""))
            lines = text.split("\n")
            line_text = lines[problem.line - 1] if 0 < problem.line <= len(lines) else ""
            where[attr] = {"line": problem.line, "column": problem.column,
                           "text": line_text, "pad": " " * max(0, (problem.column or 1) - 1)}
    return where


def _stream_names(account: Account) -> list[str]:
    names = set(Stream.objects.for_account(account).values_list("name", flat=True))
    names.update(Mapping.objects.for_account(account).values_list("stream", flat=True))
    return sorted(names)


# --------------------------------------------------------------------------- the overview


def _problem_index(problems: list[Problem]) -> dict[tuple[str, str], list[Problem]]:
    index: dict[tuple[str, str], list[Problem]] = {}
    for problem in problems:
        index.setdefault((problem.kind, problem.ref), []).append(problem)
    return index


def _problem_target(problem: Problem, field_ids: dict[str, int]) -> tuple[str, str]:
    """What a problem is about, as words and a link to its form."""
    ref = problem.ref
    if problem.kind == "field":
        link = (reverse("schema:field-edit", args=[field_ids[ref]]) if ref in field_ids
                else "")
        return f"field {ref}", link
    if problem.kind == "mapping" and ref.isdigit():
        return f"mapping #{ref}", reverse("schema:mapping-edit", args=[int(ref)])
    if problem.kind == "route_rule":
        if ref.isdigit():
            return f"route rule #{ref}", reverse("schema:rule-edit", args=[int(ref)])
        return "route rules", reverse("schema:overview") + "#route-rules"
    return problem.kind.replace("_", " "), ""


DIFF_KINDS = (("fields", "Fields"), ("mappings", "Mappings"), ("route_rules", "Route rules"))


def diff_parts(diff: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(kind, label, diff[kind]) for kind, label in DIFF_KINDS]


def draft_status(account: Account) -> dict[str, Any]:
    """The banner's facts: the diff with the live version and the draft's problems."""
    diff = versions.diff_schema(account)
    problems = versions.validate_draft(account)
    return {"diff": diff, "diff_parts": diff_parts(diff), "changes": count_changes(diff),
            "problems": problems, "live_version": diff["live_version"]}


@require_GET
@strata_page("schema.view")
def overview(request: HttpRequest) -> HttpResponse:
    actor = page_actor(request)
    account = actor.account
    status = draft_status(account)
    index = _problem_index(status["problems"])
    fields = list(Field.objects.for_account(account).prefetch_related("mappings")
                  .order_by("name"))
    field_ids = {f.name: f.pk for f in fields}
    rows: list[dict[str, Any]] = []
    for field in fields:
        mappings = sorted(field.mappings.all(), key=lambda m: (m.stream, m.pk))
        rows.append({
            "field": field,
            "problems": index.get(("field", field.name), []),
            "mappings": [{"mapping": m, "problems": index.get(("mapping", str(m.pk)), [])}
                         for m in mappings],
        })
    rules = [{"rule": r, "problems": index.get(("route_rule", str(r.pk)), [])}
             for r in RouteRule.objects.for_account(account)
             .order_by("input_stream", "-priority", "id")]
    return render_page(request, "profiles/schema/overview.html", {
        **status,
        "problem_rows": [{"problem": p, **dict(zip(("label", "link"),
                                                   _problem_target(p, field_ids), strict=True))}
                         for p in status["problems"]],
        "field_rows": rows,
        "rule_rows": rules,
        "mapping_count": sum(len(r["mappings"]) for r in rows),
        "identifier_count": sum(1 for f in fields if f.is_identifier),
        "versions": SchemaVersion.objects.for_account(account).count(),
        **_rebuild_context(request),
    }, section=SECTION, title="Schema")


@require_POST
@strata_page("schema.edit")
def publish(request: HttpRequest) -> HttpResponse:
    """Publish the draft; a refusal (problems, or nothing to publish) is shown on the
    overview, and nothing changes."""
    actor = page_actor(request)
    with_rebuild = request.POST.get("rebuild") == "on"
    if with_rebuild and _rebuild_running(actor.account):
        messages.error(request, "Not published: a rebuild is under way. Publish when it has "
                       "finished.")
        return HttpResponseRedirect(reverse("schema:overview"))
    try:
        version = versions.publish(actor.account, actor=actor,
                                   note=request.POST.get("note", "").strip()[:500])
    except SchemaValidationError as exc:
        if [p.code for p in exc.problems] == ["no_changes"]:
            messages.info(request, exc.problems[0].message)
        else:
            count = len(exc.problems)
            messages.error(request, f"Not published: the draft has {count} problem"
                           f"{'s' if count != 1 else ''}. Fix {'them' if count != 1 else 'it'}"
                           " and publish again.")
        return HttpResponseRedirect(reverse("schema:overview"))
    if with_rebuild:
        rebuild.start_rebuild(actor.account, actor=actor)
        messages.success(request, f"Published version {version.number}; profiles are being "
                         "rebuilt with it from the raw store.")
    else:
        messages.success(request, f"Published version {version.number}: processing uses it "
                         "from now on.")
    return HttpResponseRedirect(reverse("schema:overview"))


def _rebuild_running(account: Account) -> bool:
    current = rebuild.rebuild_status(account)
    return current is not None and not current.finished


def _rebuild_context(request: HttpRequest) -> dict[str, Any]:
    actor = page_actor(request)
    current = rebuild.rebuild_status(actor.account)
    return {"rebuild": current, "rebuild_percent": round(100 * current.progress, 1)
            if current else 0, "can_edit": actor.has("schema.edit")}


@require_http_methods(["GET", "POST"])
@strata_page("schema.view")
def rebuild_panel(request: HttpRequest) -> HttpResponse:
    """GET (htmx): the rebuild card, polled while a rebuild runs. POST (schema.edit):
    recompute every profile from the raw store with the live version."""
    actor = page_actor(request)
    if request.method == "GET":
        if request.headers.get("HX-Request") != "true":
            return HttpResponseRedirect(reverse("schema:overview") + "#rebuild")
        response = render(request, "profiles/schema/_rebuild.html", _rebuild_context(request))
        response["Cache-Control"] = "no-store"
        return response
    if not actor.has("schema.edit"):
        return forbidden(request)
    if versions.live_version(actor.account) is None:
        messages.error(request, "Publish a schema version before rebuilding profiles with it.")
    elif _rebuild_running(actor.account):
        messages.info(request, "A rebuild is already under way.")
    else:
        rebuild.start_rebuild(actor.account, actor=actor)
        messages.success(request, "Profiles are being rebuilt from the raw store with the live "
                         "version.")
    return HttpResponseRedirect(reverse("schema:overview") + "#rebuild")


@require_POST
@strata_page("schema.edit")
def install_lytics(request: HttpRequest) -> HttpResponse:
    """The Lytics use-case schema (email, _uid, taxonomy, loyalty tier, preferred activities)
    added to the draft, to review and publish."""
    lytics.install_lytics_schema(page_actor(request).account, user=request.user, publish_now=False)
    messages.success(request, "The Lytics use-case fields and mappings are in the draft. "
                     "Review them, then publish.")
    return HttpResponseRedirect(reverse("schema:overview"))


# --------------------------------------------------------------------------- fields


def _field_initial(field: Field) -> dict[str, Any]:
    return {attr: getattr(field, attr) for attr in versions.FIELD_ATTRS}


@require_http_methods(["GET", "POST"])
@strata_page("schema.edit")
def field_form(request: HttpRequest, pk: int | None = None) -> HttpResponse:
    actor = page_actor(request)
    account = actor.account
    field = None
    if pk is not None:
        field = Field.objects.for_account(account).filter(pk=pk).first()
        if field is None:
            return _not_found(request, "No such field")
    status = 200
    if request.method == "POST":
        form = FieldForm(request.POST)
        if form.is_valid():
            try:
                saved = drafts.save_field(account, instance=field, actor=actor,
                                          **form.cleaned_data)
            except SchemaValidationError as exc:
                add_problems(form, exc.problems)
                status = 400
                if field is not None:
                    field.refresh_from_db()  # the service set the refused values on it
            else:
                messages.success(request, f"Field {saved.name} saved to the draft.")
                return HttpResponseRedirect(reverse("schema:overview") + f"#field-{saved.name}")
        else:
            status = 400
    else:
        form = FieldForm(initial=_field_initial(field) if field else None)
    return render_page(request, "profiles/schema/field_form.html", {
        "form": form, "field": field,
        "mappings": list(field.mappings.order_by("stream", "id")) if field else [],
        "can_delete": actor.has("schema.delete"),
        "operators": schema_operator_help(),
    }, section=SECTION, title=f"Field {field.name}" if field else "New field", status=status)


def schema_operator_help() -> list[dict[str, Any]]:
    """Which merge operators fit which field types (the form hints at it)."""
    return [{"name": name, "fits": ["every type"] if set(op.fits) >= set(FIELD_TYPES)
             else sorted(op.fits)} for name, op in sorted(OPERATORS.items())]


@require_POST
@strata_page("schema.delete")
def field_delete(request: HttpRequest, pk: int) -> HttpResponse:
    actor = page_actor(request)
    field = Field.objects.for_account(actor.account).filter(pk=pk).first()
    if field is None:
        return _not_found(request, "No such field")
    drafts.delete_field(actor.account, field, actor)
    messages.success(request, f"Field {field.name} and its mappings removed from the draft.")
    return HttpResponseRedirect(reverse("schema:overview"))


# --------------------------------------------------------------------------- mappings


@require_http_methods(["GET", "POST"])
@strata_page("schema.edit")
def mapping_form(request: HttpRequest, pk: int | None = None) -> HttpResponse:
    actor = page_actor(request)
    account = actor.account
    mapping = None
    if pk is not None:
        mapping = (Mapping.objects.for_account(account).select_related("field")
                   .filter(pk=pk).first())
        if mapping is None:
            return _not_found(request, "No such mapping")
    status = 200
    where: dict[str, dict[str, Any]] = {}
    if request.method == "POST":
        form = MappingForm(request.POST, account=account)
        if form.is_valid():
            data = form.cleaned_data
            try:
                saved = drafts.save_mapping(account, instance=mapping, field=data["field"],
                                            stream=data["stream"].strip(),
                                            expression=data["expression"],
                                            guard=data["guard"], actor=actor)
            except SchemaValidationError as exc:
                where = add_problems(form, exc.problems)
                status = 400
                if mapping is not None:
                    mapping.refresh_from_db()
            else:
                messages.success(request, f"Mapping {saved.field.name} ← {saved.stream} saved "
                                 "to the draft.")
                return HttpResponseRedirect(
                    reverse("schema:overview") + f"#field-{saved.field.name}")
        else:
            status = 400
    elif mapping is not None:
        form = MappingForm(account=account, initial={
            "field": mapping.field.name, "stream": mapping.stream,
            "expression": mapping.expression, "guard": mapping.guard})
    else:
        form = MappingForm(account=account, initial={
            "field": request.GET.get("field", ""), "stream": request.GET.get("stream", "")})
    return render_page(request, "profiles/schema/mapping_form.html", {
        "form": form, "mapping": mapping, "where": where,
        "streams": _stream_names(account),
        "has_fields": bool(form.field_choice.choices),
        "can_delete": actor.has("schema.delete"),
        "evaluate_limit": EVALUATE_LIMIT,
    }, section=SECTION, title="Mapping" if mapping else "New mapping", status=status)


@require_POST
@strata_page("schema.delete")
def mapping_delete(request: HttpRequest, pk: int) -> HttpResponse:
    actor = page_actor(request)
    account = actor.account
    mapping = Mapping.objects.for_account(account).select_related("field").filter(pk=pk).first()
    if mapping is None:
        return _not_found(request, "No such mapping")
    drafts.delete_mapping(account, mapping, actor)
    messages.success(request, f"Mapping {mapping.field.name} ← {mapping.stream} removed from "
                     "the draft.")
    return HttpResponseRedirect(reverse("schema:overview"))


@require_POST
@strata_page("schema.view")
def evaluate(request: HttpRequest) -> HttpResponse:
    """The Evaluate panel (htmx): what the form's expression (and guard) would give the
    field for the latest raw events of the stream. Nothing is stored."""
    actor = page_actor(request)
    account = actor.account
    stream = request.POST.get("stream", "").strip()[:100]
    expression = request.POST.get("expression", "")
    guard = request.POST.get("guard", "")
    field = Field.objects.for_account(account).filter(
        name=request.POST.get("field", "")[:FIELD_NAME_MAX]).first()
    context: dict[str, Any] = {"stream": stream, "field": field, "limit": EVALUATE_LIMIT}
    if not stream:
        context["problems"] = [Problem("invalid_stream", "Choose the stream to try it on.")]
    else:
        try:
            rows = evaluate_mapping(actor, stream=stream, expression=expression, guard=guard,
                                    field=field, limit=EVALUATE_LIMIT)
        except SchemaValidationError as exc:
            context["problems"] = exc.problems
        else:
            messages_by_id = dict(RawEvent.objects.for_account(account).filter(
                stream=stream, id__in=[r["raw_event_id"] for r in rows])
                .values_list("id", "message"))
            context["rows"] = [
                {**row, "shown": _shown(row["value"]), "message": json.dumps(
                    messages_by_id.get(row["raw_event_id"]), ensure_ascii=False, default=str)}
                for row in rows]
            context["summary"] = evaluation_summary(rows)
    response = render(request, "profiles/schema/_evaluation.html", context)
    response["Cache-Control"] = "no-store"
    return response


def _shown(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


# --------------------------------------------------------------------------- route rules


@require_http_methods(["GET", "POST"])
@strata_page("schema.edit")
def rule_form(request: HttpRequest, pk: int | None = None) -> HttpResponse:
    actor = page_actor(request)
    account = actor.account
    rule = None
    if pk is not None:
        rule = RouteRule.objects.for_account(account).filter(pk=pk).first()
        if rule is None:
            return _not_found(request, "No such route rule")
    status = 200
    where: dict[str, dict[str, Any]] = {}
    if request.method == "POST":
        form = RouteRuleForm(request.POST)
        if form.is_valid():
            data = {**form.cleaned_data}
            data["input_stream"] = data["input_stream"].strip()
            data["output_stream"] = data["output_stream"].strip()
            try:
                drafts.save_route_rule(account, instance=rule, actor=actor, **data)
            except SchemaValidationError as exc:
                where = add_problems(form, exc.problems)
                status = 400
                if rule is not None:
                    rule.refresh_from_db()
            else:
                messages.success(request, "Route rule saved to the draft.")
                return HttpResponseRedirect(reverse("schema:overview") + "#route-rules")
        else:
            status = 400
    elif rule is not None:
        form = RouteRuleForm(initial={attr: getattr(rule, attr) for attr in versions.ROUTE_ATTRS})
    else:
        form = RouteRuleForm()
    return render_page(request, "profiles/schema/rule_form.html", {
        "form": form, "rule": rule, "where": where, "streams": _stream_names(account),
        "can_delete": actor.has("schema.delete"),
    }, section=SECTION, title="Route rule" if rule else "New route rule", status=status)


@require_POST
@strata_page("schema.delete")
def rule_delete(request: HttpRequest, pk: int) -> HttpResponse:
    actor = page_actor(request)
    account = actor.account
    rule = RouteRule.objects.for_account(account).filter(pk=pk).first()
    if rule is None:
        return _not_found(request, "No such route rule")
    drafts.delete_route_rule(account, rule, actor)
    messages.success(request, "Route rule removed from the draft.")
    return HttpResponseRedirect(reverse("schema:overview") + "#route-rules")


# --------------------------------------------------------------------------- versions


@require_GET
@strata_page("schema.view")
def version_list(request: HttpRequest) -> HttpResponse:
    actor = page_actor(request)
    published = list(SchemaVersion.objects.for_account(actor.account)
                     .select_related("published_by").order_by("-number"))
    live = published[0].number if published else None
    return render_page(request, "profiles/schema/versions.html", {
        "versions": [{"version": v, "live": v.number == live,
                      "counts": {kind: len(v.snapshot.get(kind, []))
                                 for kind in ("fields", "mappings", "route_rules")}}
                     for v in published],
        "live": live,
        "changes": count_changes(versions.diff_schema(actor.account)),
        "can_edit": actor.has("schema.edit"),
    }, section=SECTION, title="Schema versions")


@require_GET
@strata_page("schema.view")
def version_detail(request: HttpRequest, number: int) -> HttpResponse:
    actor = page_actor(request)
    version = (SchemaVersion.objects.for_account(actor.account).select_related("published_by")
               .filter(number=number).first())
    if version is None:
        return _not_found(request, "No such version")
    live = versions.live_version(actor.account)
    return render_page(request, "profiles/schema/version_detail.html", {
        "version": version,
        "live": live is not None and live.number == version.number,
        "snapshot": version.snapshot,
        "snapshot_json": json.dumps(version.snapshot, indent=2, ensure_ascii=False),
        # what reverting would change in the live schema
        "diff_parts": diff_parts(
            versions.diff_snapshots(live.snapshot if live else None, version.snapshot)),
        "can_edit": actor.has("schema.edit"),
    }, section=SECTION, title=f"Schema version {version.number}")


@require_POST
@strata_page("schema.edit")
def version_revert(request: HttpRequest, number: int) -> HttpResponse:
    actor = page_actor(request)
    if not SchemaVersion.objects.for_account(actor.account).filter(number=number).exists():
        return _not_found(request, "No such version")
    try:
        version = versions.revert(actor.account, number, actor=actor)
    except SchemaValidationError as exc:
        messages.info(request, exc.problems[0].message if exc.problems else str(exc))
        return HttpResponseRedirect(reverse("schema:versions"))
    assert version is not None
    messages.success(request, f"Version {number} published again as version "
                     f"{version.number}; the draft is that schema now.")
    return HttpResponseRedirect(reverse("schema:versions"))
