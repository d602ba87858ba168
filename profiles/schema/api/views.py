"""The schema API (/api/v1/schema/…): fields, mappings and route rules of the draft, its
validation and diff with the live version, publish, versions and revert, the mapping dry run,
and profile rebuilds (``profiles.processing.rebuild``). Thin views over ``profiles.schema.drafts``
and ``profiles.schema.versions``: every edit goes through their services, whose refusals (with
the reason and, for an expression, its line and column) become 400 answers.

Permissions (feature ``schema``): reading and the dry run need ``schema.view``; edits,
publish, revert and rebuild ``schema.edit``; deletes ``schema.delete``. Another account's
objects are not found (404).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.db.models import QuerySet
from django.http import Http404
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from cdp_site.api.errors import APIError
from cdp_site.api.viewsets import AccountAPIView, AccountScopedViewSet
from profiles.masking import PII_PERMISSION, PiiPolicy
from profiles.models import Field, Mapping, RouteRule, SchemaVersion
from profiles.processing import rebuild
from profiles.schema import drafts, versions
from profiles.schema.api import serializers as s
from profiles.schema.checks import Problem, SchemaValidationError

if TYPE_CHECKING:
    from cdp_site.tenancy import Actor

REFUSED = {400: s.RefusalSerializer}


class SchemaRefusals:
    """Answers a refused schema edit (SchemaValidationError) with 400, the first problem's
    code and message, ``errors`` per attribute and the list of problems."""

    def handle_exception(self, exc: Exception) -> Response:
        if isinstance(exc, SchemaValidationError) and exc.problems:
            return Response(s.refusal_body(exc.problems), status=status.HTTP_400_BAD_REQUEST)
        return super().handle_exception(exc)  # type: ignore[misc]


def field_ref(account: Any, value: str) -> Field | str:
    """A field named by its id (digits: no field name starts with one) or its name. An id
    of no field of this account is refused like an unknown name."""
    value = value.strip()
    if value.isdigit():
        found = Field.objects.for_account(account).filter(pk=int(value)).first()
        if found is None:
            raise SchemaValidationError([Problem("unknown_field", f"No field with id {value}.",
                                                 "mapping", "", "field")])
        return found
    return value


def _query_flag(request: Request, name: str) -> bool | None:
    raw = request.query_params.get(name)
    return {"true": True, "1": True, "false": False, "0": False}.get(raw or "")


class FieldViewSet(SchemaRefusals, AccountScopedViewSet, mixins.ListModelMixin,
                   mixins.RetrieveModelMixin):
    """The draft's fields with their mappings. ``?q=`` (part of the name), ``?identifier=``
    true/false."""

    model = Field
    serializer_class = s.FieldSerializer
    permission_feature = "schema"

    def scope_queryset(self, queryset: QuerySet) -> QuerySet:
        queryset = queryset.prefetch_related("mappings").order_by("name")
        if self.action == "list":
            q = self.request.query_params.get("q", "").strip()
            if q:
                queryset = queryset.filter(name__icontains=q[:100])
            identifier = _query_flag(self.request, "identifier")
            if identifier is not None:
                queryset = queryset.filter(is_identifier=identifier)
        return queryset

    def _answer(self, field: Field, code: int = status.HTTP_200_OK) -> Response:
        return Response(s.FieldSerializer(self.get_queryset().get(pk=field.pk)).data,
                        status=code)

    @extend_schema(request=s.FieldWriteSerializer, responses={201: s.FieldSerializer, **REFUSED})
    def create(self, request: Request) -> Response:
        serializer = s.FieldWriteSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        field = drafts.save_field(self.actor.account, actor=self.actor,
                                  **serializer.validated_data)
        return self._answer(field, status.HTTP_201_CREATED)

    @extend_schema(request=s.FieldWriteSerializer, responses={200: s.FieldSerializer, **REFUSED})
    def update(self, request: Request, pk: str | None = None, partial: bool = False
               ) -> Response:
        field = self.get_object()
        serializer = s.FieldWriteSerializer(data=request.data, partial=partial)
        serializer.is_valid(raise_exception=True)
        attrs = dict(serializer.validated_data)
        if not partial:
            attrs = {**s.FIELD_DEFAULTS, **attrs}
        drafts.save_field(self.actor.account, instance=field, actor=self.actor, **attrs)
        return self._answer(field)

    @extend_schema(request=s.FieldWriteSerializer, responses={200: s.FieldSerializer, **REFUSED})
    def partial_update(self, request: Request, pk: str | None = None) -> Response:
        return self.update(request, pk, partial=True)

    @extend_schema(responses={204: None})
    def destroy(self, request: Request, pk: str | None = None) -> Response:
        """Remove the field and its mappings from the draft (published versions keep them)."""
        drafts.delete_field(self.actor.account, self.get_object(), self.actor)
        return Response(status=status.HTTP_204_NO_CONTENT)


class MappingViewSet(SchemaRefusals, AccountScopedViewSet, mixins.ListModelMixin,
                     mixins.RetrieveModelMixin):
    """The draft's mappings (field ← stream: expression, when guard). ``?stream=``,
    ``?field=`` (a name)."""

    model = Mapping
    serializer_class = s.MappingSerializer
    permission_feature = "schema"

    def scope_queryset(self, queryset: QuerySet) -> QuerySet:
        queryset = queryset.select_related("field").order_by("stream", "field__name", "id")
        if self.action == "list":
            stream = self.request.query_params.get("stream")
            if stream:
                queryset = queryset.filter(stream=stream[:100])
            field = self.request.query_params.get("field")
            if field:
                queryset = queryset.filter(field__name=field[:100])
        return queryset

    def _answer(self, mapping: Mapping, code: int = status.HTTP_200_OK) -> Response:
        return Response(s.MappingSerializer(self.get_queryset().get(pk=mapping.pk)).data,
                        status=code)

    @extend_schema(request=s.MappingWriteSerializer,
                   responses={201: s.MappingSerializer, **REFUSED})
    def create(self, request: Request) -> Response:
        serializer = s.MappingWriteSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        account = self.actor.account
        mapping = drafts.save_mapping(
            account, field=field_ref(account, data["field"]), stream=data["stream"],
            expression=data["expression"], guard=data.get("guard", ""), actor=self.actor)
        return self._answer(mapping, status.HTTP_201_CREATED)

    @extend_schema(request=s.MappingWriteSerializer,
                   responses={200: s.MappingSerializer, **REFUSED})
    def update(self, request: Request, pk: str | None = None, partial: bool = False
               ) -> Response:
        mapping = self.get_object()
        serializer = s.MappingWriteSerializer(data=request.data, partial=partial)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        account = self.actor.account
        field = field_ref(account, data["field"]) if "field" in data else mapping.field
        drafts.save_mapping(
            account, instance=mapping, field=field,
            stream=data.get("stream", mapping.stream),
            expression=data.get("expression", mapping.expression),
            guard=data.get("guard", mapping.guard if partial else ""), actor=self.actor)
        return self._answer(mapping)

    @extend_schema(request=s.MappingWriteSerializer,
                   responses={200: s.MappingSerializer, **REFUSED})
    def partial_update(self, request: Request, pk: str | None = None) -> Response:
        return self.update(request, pk, partial=True)

    @extend_schema(responses={204: None})
    def destroy(self, request: Request, pk: str | None = None) -> Response:
        drafts.delete_mapping(self.actor.account, self.get_object(), self.actor)
        return Response(status=status.HTTP_204_NO_CONTENT)


class RouteRuleViewSet(SchemaRefusals, AccountScopedViewSet, mixins.ListModelMixin,
                       mixins.RetrieveModelMixin):
    """The draft's route rules: events of ``input_stream`` matching ``expression`` move to
    ``output_stream`` before mapping (higher priority first). A rule that would close a loop
    is refused. ``?stream=`` (input stream)."""

    model = RouteRule
    serializer_class = s.RouteRuleSerializer
    permission_feature = "schema"

    def scope_queryset(self, queryset: QuerySet) -> QuerySet:
        queryset = queryset.order_by("input_stream", "-priority", "id")
        stream = self.request.query_params.get("stream") if self.action == "list" else None
        return queryset.filter(input_stream=stream[:100]) if stream else queryset

    @extend_schema(request=s.RouteRuleWriteSerializer,
                   responses={201: s.RouteRuleSerializer, **REFUSED})
    def create(self, request: Request) -> Response:
        serializer = s.RouteRuleWriteSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        rule = drafts.save_route_rule(self.actor.account, actor=self.actor,
                                      **{**s.ROUTE_DEFAULTS, **serializer.validated_data})
        return Response(s.RouteRuleSerializer(rule).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=s.RouteRuleWriteSerializer,
                   responses={200: s.RouteRuleSerializer, **REFUSED})
    def update(self, request: Request, pk: str | None = None, partial: bool = False
               ) -> Response:
        rule = self.get_object()
        serializer = s.RouteRuleWriteSerializer(data=request.data, partial=partial)
        serializer.is_valid(raise_exception=True)
        current = {attr: getattr(rule, attr) for attr in versions.ROUTE_ATTRS}
        base = current if partial else {**current, **s.ROUTE_DEFAULTS}
        drafts.save_route_rule(self.actor.account, instance=rule, actor=self.actor,
                               **{**base, **serializer.validated_data})
        return Response(s.RouteRuleSerializer(rule).data)

    @extend_schema(request=s.RouteRuleWriteSerializer,
                   responses={200: s.RouteRuleSerializer, **REFUSED})
    def partial_update(self, request: Request, pk: str | None = None) -> Response:
        return self.update(request, pk, partial=True)

    @extend_schema(responses={204: None})
    def destroy(self, request: Request, pk: str | None = None) -> Response:
        drafts.delete_route_rule(self.actor.account, self.get_object(), self.actor)
        return Response(status=status.HTTP_204_NO_CONTENT)


class ValidateView(AccountAPIView):
    """Every problem of the draft as a whole; ``valid`` when it can be published."""

    action_permissions = {"get": "schema.view"}

    @extend_schema(responses=s.ValidationSerializer)
    def get(self, request: Request) -> Response:
        problems = versions.validate_draft(self.actor.account)
        return Response(s.ValidationSerializer(
            {"valid": not problems, "problems": [p.as_dict() for p in problems]}).data)


def diff_data(account: Any) -> dict[str, Any]:
    diff = versions.diff_schema(account)
    return {**diff, "changes": s.count_changes(diff)}


class DiffView(AccountAPIView):
    """What publishing the draft would change compared with the live version."""

    action_permissions = {"get": "schema.view"}

    @extend_schema(responses=s.DiffSerializer)
    def get(self, request: Request) -> Response:
        return Response(s.DiffSerializer(diff_data(self.actor.account)).data)


class PublishView(SchemaRefusals, AccountAPIView):
    """Publish the draft as the next version, which processing uses from then on. Refused
    (400, nothing changes) when the draft has problems (``draft_invalid``, with all of them)
    or does not differ from the live version (``no_changes``). ``rebuild: true`` then
    recomputes every profile from the raw store with it (see ``rebuild``)."""

    action_permissions = {"post": "schema.edit"}

    @extend_schema(request=s.PublishSerializer,
                   responses={201: s.SchemaVersionDetailSerializer, **REFUSED},
                   description="With ``rebuild: true`` the answer adds ``rebuild``, the "
                   "progress of the profile rebuild it started.")
    def post(self, request: Request) -> Response:
        serializer = s.PublishSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        account = self.actor.account
        if serializer.validated_data["rebuild"]:
            refuse_rebuild_while_running(account)
        try:
            version = versions.publish(account, actor=self.actor,
                                       note=serializer.validated_data["note"])
        except SchemaValidationError as exc:
            return refused_publish(exc)
        body: dict[str, Any] = s.SchemaVersionDetailSerializer(
            version, context={"live_number": version.number}).data
        if serializer.validated_data["rebuild"]:
            rebuild.start_rebuild(account, actor=self.actor)
            body = {**body, "rebuild": s.rebuild_data(rebuild.rebuild_status(account))}
        return Response(body, status=status.HTTP_201_CREATED)


def refused_publish(exc: SchemaValidationError) -> Response:
    problems = exc.problems
    if [p.code for p in problems] == ["no_changes"]:
        return Response(s.refusal_body(problems), status=status.HTTP_400_BAD_REQUEST)
    count = len(problems)
    message = (f"The draft has {count} problem{'s' if count != 1 else ''}; fix "
               f"{'them' if count != 1 else 'it'} before publishing. {problems[0].message}")
    return Response(s.refusal_body(problems, code="draft_invalid", message=message),
                    status=status.HTTP_400_BAD_REQUEST)


def refuse_rebuild_while_running(account: Any) -> None:
    current = rebuild.rebuild_status(account)
    if current is not None and not current.finished:
        raise APIError("rebuild_in_progress", f"A rebuild is under way ({current.done:,} of "
                       f"{current.rebuild.events_total:,} events); start another when it "
                       "has finished.", status.HTTP_409_CONFLICT)


class RebuildView(AccountAPIView):
    """GET: the latest profile rebuild and its progress. POST: recompute every profile of the
    account from the raw store with the live schema version. Profiles are deleted and every
    raw event is queued again; the workers process them in order (events collected meanwhile
    queue behind them). Refused before any version is published, and while a rebuild runs."""

    action_permissions = {"get": "schema.view", "post": "schema.edit"}

    @extend_schema(responses=s.RebuildAnswerSerializer)
    def get(self, request: Request) -> Response:
        current = rebuild.rebuild_status(self.actor.account)
        return Response(s.RebuildAnswerSerializer({"rebuild": s.rebuild_data(current)}).data)

    @extend_schema(request=None, responses={202: s.RebuildAnswerSerializer,
                                            400: s.RefusalSerializer, 409: s.RefusalSerializer})
    def post(self, request: Request) -> Response:
        account = self.actor.account
        if versions.live_version(account) is None:
            raise APIError("no_live_schema", "Nothing is published yet: publish a schema "
                           "version before rebuilding profiles with it.")
        refuse_rebuild_while_running(account)
        rebuild.start_rebuild(account, actor=self.actor)
        return Response(s.RebuildAnswerSerializer(
            {"rebuild": s.rebuild_data(rebuild.rebuild_status(account))}).data,
            status=status.HTTP_202_ACCEPTED)


class SchemaVersionViewSet(SchemaRefusals, AccountScopedViewSet, mixins.ListModelMixin,
                           mixins.RetrieveModelMixin):
    """Published versions, newest first (the first one is live); the detail adds the
    snapshot. ``POST versions/{number}/revert`` publishes that version again as a new one."""

    model = SchemaVersion
    permission_feature = "schema"
    lookup_field = "number"
    lookup_value_regex = r"[0-9]+"
    action_permissions = {"revert": "edit"}

    def scope_queryset(self, queryset: QuerySet) -> QuerySet:
        return queryset.select_related("published_by").order_by("-number")

    def get_serializer_class(self) -> type:
        if self.action == "list":
            return s.SchemaVersionSerializer
        return s.SchemaVersionDetailSerializer

    def get_serializer_context(self) -> dict[str, Any]:
        context = dict(super().get_serializer_context())  # the stubs say Mapping; DRF builds a dict
        if not getattr(self, "swagger_fake_view", False):
            live = versions.live_version(self.actor.account)
            context["live_number"] = live.number if live else None
        return context

    @extend_schema(request=s.RevertSerializer,
                   responses={201: s.SchemaVersionDetailSerializer,
                              200: s.DraftRestoredSerializer, **REFUSED})
    @action(detail=True, methods=["post"])
    def revert(self, request: Request, number: str | None = None) -> Response:
        """Go back to this version: the draft becomes its schema and it is published as a new
        version (``reverted_from`` set). ``{"publish": false}`` restores the draft only."""
        target = self.get_object()
        serializer = s.RevertSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        account = self.actor.account
        if not serializer.validated_data["publish"]:
            versions.revert(account, target.number, actor=self.actor, publish_now=False)
            return Response(s.DraftRestoredSerializer(
                {"draft_restored_from": target.number, "diff": diff_data(account)}).data)
        version = versions.revert(account, target.number, actor=self.actor)
        assert version is not None
        return Response(s.SchemaVersionDetailSerializer(
            version, context={"live_number": version.number}).data,
            status=status.HTTP_201_CREATED)


def evaluate_mapping(actor: Actor, *, stream: str, expression: str, guard: str,
                     field: Field | None, limit: int) -> list[dict[str, Any]]:
    """``preview_mapping`` as this reader may see it: a PII field's values masked for a reader
    without ``pii.view`` (ROLES.md)."""
    rows = drafts.preview_mapping(actor.account, stream=stream, expression=expression,
                                  guard=guard, field=field, limit=limit)
    if field is not None:
        policy = PiiPolicy(pii_fields=frozenset({field.name}) if field.is_pii else frozenset(),
                           unmasked=actor.has(PII_PERMISSION))
        for row in rows:
            row["value"] = policy.value(field.name, row["value"])
    return rows


class EvaluateView(SchemaRefusals, AccountAPIView):
    """A dry run: a mapping's expression (and guard) over the latest raw events of its stream,
    newest first, with the value each would give the field, or why none. Nothing is stored.
    Give ``mapping`` (a saved one's id) or ``stream`` and ``expression``."""

    action_permissions = {"post": "schema.view"}

    @extend_schema(request=s.EvaluateSerializer,
                   responses={200: s.EvaluationSerializer, **REFUSED})
    def post(self, request: Request) -> Response:
        serializer = s.EvaluateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        account = self.actor.account
        field: Field | None = None
        if data.get("mapping") is not None:
            mapping = (Mapping.objects.for_account(account).select_related("field")
                       .filter(pk=data["mapping"]).first())
            if mapping is None:
                raise Http404
            field = mapping.field
            stream = data.get("stream") or mapping.stream
            expression = data.get("expression") or mapping.expression
            guard = data.get("guard", mapping.guard)
        else:
            stream, expression, guard = data["stream"], data["expression"], data.get("guard", "")
        if data.get("field"):
            ref = field_ref(account, data["field"])
            field = ref if isinstance(ref, Field) else (
                Field.objects.for_account(account).filter(name=ref).first())
            if field is None:
                raise SchemaValidationError([Problem("unknown_field", f"No field {ref!r}.",
                                                     "mapping", "", "field")])
        rows = evaluate_mapping(self.actor, stream=stream, expression=expression, guard=guard,
                                field=field, limit=data["limit"])
        return Response(s.EvaluationSerializer({
            "stream": stream, "expression": expression, "guard": guard,
            "field": field.name if field else None, "field_type": field.type if field else None,
            "summary": s.evaluation_summary(rows), "results": rows,
        }).data)
