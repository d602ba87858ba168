"""The audiences API (under /api/v1/): CRUD by slug, members, size and history, a profile's
audiences, validate and estimate. Thin views over audiences.editing and audiences.membership;
permissions ``audiences.view`` / ``audiences.edit`` (create too) / ``audiences.delete``; PII of
members masked without ``pii.view``. Refusals: a bad rule is 400 ``invalid_rule`` with
``problems`` (JSON path, code, message; line and column for text); a used audience is 409
``audience_in_use``."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from audiences import editing, membership
from audiences.api import serializers as s
from audiences.explain import explain_profile, find_profile
from audiences.models import Audience, AudienceMembership
from audiences.rules import RuleError, TextProblem
from cdp_site.api.errors import APIError
from cdp_site.api.viewsets import AccountScopedViewSet
from profiles.api.views import PageWithoutCount
from profiles.masking import policy_for_actor
from profiles.models import Profile

HISTORY_MAX = 2000


def _bool_param(request: Request, name: str) -> bool | None:
    raw = request.query_params.get(name)
    if raw in (None, ""):
        return None
    if raw.lower() not in ("true", "false", "1", "0"):
        raise APIError("invalid", f"{name} must be true or false.")
    return raw.lower() in ("true", "1")


def invalid_rule_response(error: RuleError) -> Response:
    first = error.problems[0] if error.problems else None
    message = f"{first.path}: {first.message}" if first else "invalid rule"
    return Response({"code": "invalid_rule", "message": message,
                     "problems": [p.as_dict() for p in error.problems]},
                    status=status.HTTP_400_BAD_REQUEST)


class AudienceViewSet(
    AccountScopedViewSet[Audience], mixins.ListModelMixin, mixins.RetrieveModelMixin
):
    """Audiences of the account, by slug. ``?q=`` searches names, ``?archived=true`` lists
    archived ones, ``?api_accessible=true`` only those visible to sites."""

    model = Audience
    serializer_class = s.AudienceSerializer
    permission_feature = "audiences"
    lookup_field = "slug"
    lookup_value_regex = r"[-a-zA-Z0-9_]+"
    action_permissions = {"members": "view", "size": "view", "validate": "view",
                          "for_profile": "view", "compute": "edit", "explain": "view"}

    def scope_queryset(self, queryset: QuerySet) -> QuerySet:
        queryset = queryset.select_related("created_by")
        if self.action != "list":
            return queryset
        archived = _bool_param(self.request, "archived")
        queryset = queryset.filter(archived=bool(archived))
        accessible = _bool_param(self.request, "api_accessible")
        if accessible is not None:
            queryset = queryset.filter(api_accessible=accessible)
        q = self.request.query_params.get("q", "").strip()
        if q:
            queryset = queryset.filter(name__icontains=q) | queryset.filter(slug__icontains=q)
        return queryset.order_by("name", "id")

    def handle_exception(self, exc: Exception) -> Response:
        if isinstance(exc, RuleError):
            return invalid_rule_response(exc)
        if isinstance(exc, editing.AudienceError):
            body = {"code": exc.code, "message": exc.message, **exc.details}
            return Response(body, status=exc.status)
        return super().handle_exception(exc)

    def _written(self, request: Request, *, partial: bool) -> dict[str, Any]:
        serializer = s.AudienceWriteSerializer(data=request.data, partial=partial)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        if not partial and "rule" not in data and "text" not in data:
            raise RuleError([TextProblem("$", "missing",
                                         "give a rule (JSON) or its text")])
        return data

    @extend_schema(request=s.AudienceWriteSerializer, responses={201: s.AudienceSerializer})
    def create(self, request: Request) -> Response:
        """Create an audience from a rule (JSON ``rule`` or FilterQL ``text``); it computes in
        the background (``status``/``progress``, then ``size``)."""
        data = self._written(request, partial=False)
        data.pop("archived", None)
        audience = editing.create_audience(self.actor.account, self.actor, **data)
        return Response(s.AudienceSerializer(audience).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=s.AudienceWriteSerializer, responses=s.AudienceSerializer)
    def partial_update(self, request: Request, slug: str | None = None) -> Response:
        """Edit; a new rule bumps ``version`` and recomputes."""
        data = self._written(request, partial=True)
        audience = editing.update_audience(self.get_object(), self.actor, **data)
        return Response(s.AudienceSerializer(audience).data)

    @extend_schema(request=s.AudienceWriteSerializer, responses=s.AudienceSerializer)
    def update(self, request: Request, slug: str | None = None) -> Response:
        data = self._written(request, partial=False)
        audience = editing.update_audience(self.get_object(), self.actor, **data)
        return Response(s.AudienceSerializer(audience).data)

    @extend_schema(responses={204: None})
    def destroy(self, request: Request, slug: str | None = None) -> Response:
        """Delete (409 ``audience_in_use`` while an audience or an experience uses it)."""
        editing.delete_audience(self.get_object(), self.actor)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(parameters=PageWithoutCount.parameters(),
                   responses=s.MemberSerializer(many=True))
    @action(detail=True, methods=["get"], pagination_class=PageWithoutCount)
    def members(self, request: Request, slug: str | None = None) -> Response:
        """Current members, by profile id (``limit`` up to 200, a larger one capped: the
        answer's ``limit`` says the page size used; ``offset``; ``next`` when there are more),
        with their field values; PII masked without ``pii.view``."""
        audience = self.get_object()
        rows = (AudienceMembership.objects.for_account(self.actor.account)
                .filter(audience=audience).select_related("profile").order_by("profile_id"))
        paginator = PageWithoutCount()
        page = paginator.paginate_queryset(rows, request, self)
        return paginator.get_paginated_response(
            s.member_data(page, policy_for_actor(self.actor)))

    @extend_schema(
        parameters=[OpenApiParameter(
            "profile", str, required=True,
            description="A profile id (123 or #123) or any identifier's exact value.")],
        responses={200: s.ExplanationSerializer, 400: s.ErrorSerializer,
                   404: s.ErrorSerializer, 409: s.ErrorSerializer})
    @action(detail=True, methods=["get"])
    def explain(self, request: Request, slug: str | None = None) -> Response:
        """Why the profile is in the audience or not: the rule's tree with, at every node, the
        profile's value (PII masked without ``pii.view``) and the node's verdict, as the
        "Why?" page shows it; ``member`` is the stored membership, ``result`` the rule now."""
        audience = self.get_object()
        q = (request.query_params.get("profile") or "").strip()
        if not q:
            raise APIError("missing_profile", "Name the profile: ?profile=<id or identifier "
                           "value>.")
        profile = find_profile(self.actor.account, q[:256])
        if profile is None:
            raise APIError("profile_not_found", "No profile has this id or identifier value.",
                           status.HTTP_404_NOT_FOUND)
        found = explain_profile(audience, profile, policy_for_actor(self.actor))
        if found["step"] is None:
            raise APIError("invalid_rule", f"The audience's rule no longer compiles: "
                           f"{found['error']}", status.HTTP_409_CONFLICT)
        step = found["step"]
        return Response({
            "audience": audience.slug, "profile_id": profile.pk, "as_of": found["now"],
            "member": found["stored"] is not None, "since": found["stored"],
            "result": step.result, "text": editing.rule_text(audience.rule),
            "tree": step.as_dict()})

    @extend_schema(parameters=[OpenApiParameter("limit", int, default=500)],
                   responses=s.SizeSerializer)
    @action(detail=True, methods=["get"])
    def size(self, request: Request, slug: str | None = None) -> Response:
        """Size, computation status and progress, and the size over time (oldest first)."""
        audience = self.get_object()
        try:
            limit = max(1, min(int(request.query_params.get("limit") or 500), HISTORY_MAX))
        except ValueError:
            raise APIError("invalid", "limit must be a whole number.") from None
        return Response(s.SizeSerializer({
            "size": audience.size, "status": audience.status, "progress": audience.progress,
            "computed_at": audience.computed_at, "error": audience.error,
            "history": membership.size_history(audience, limit=limit)}).data)

    @extend_schema(request=None, responses={202: s.AudienceSerializer})
    @action(detail=True, methods=["post"])
    def compute(self, request: Request, slug: str | None = None) -> Response:
        """Compute the audience again now (in the background)."""
        audience = self.get_object()
        membership.start_compute(audience)
        return Response(s.AudienceSerializer(audience).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=s.RuleInputSerializer, responses=s.ValidateResultSerializer)
    @action(detail=False, methods=["post"])
    def validate(self, request: Request) -> Response:
        """Check a rule (JSON or text) without saving; its text form and estimated size."""
        serializer = s.RuleInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        rule = editing.rule_from_input(data.get("rule"), data.get("text"))
        account = self.actor.account
        membership.check_rule(account, rule, slug=data.get("slug"), actor=self.actor)
        size = membership.estimate_size(account, rule)
        return Response({"valid": True, "rule": rule, "text": editing.rule_text(rule),
                         "estimated_size": size})

    @extend_schema(responses=s.ProfileAudienceSerializer(many=True))
    @action(detail=False, methods=["get"], url_path=r"for-profile/(?P<profile_id>\d+)")
    def for_profile(self, request: Request, profile_id: str) -> Response:
        """The audiences a profile is in now."""
        account = self.actor.account
        if not Profile.objects.for_account(account).filter(pk=int(profile_id)).exists():
            raise APIError("not_found", "No such profile.", status.HTTP_404_NOT_FOUND)
        return Response({"profile_id": int(profile_id),
                         "results": membership.profile_audience_rows(account.pk,
                                                                     int(profile_id))})


