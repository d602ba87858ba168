"""The experiences management API (/api/v1/experiences/…, /api/v1/goals/…): thin views over
``experiences.lifecycle``, whose refusals become ``{"code", "message", "problems"}`` with 400
(or 409 for a conflict: a duplicate key, a transition the status does not allow).

Permissions: experiences (feature ``experiences``): reading and phases need ``view``; create,
edit, activate, pause, resume, complete and split changes ``edit``; delete ``delete``. Goals
(feature ``goals``): ``view`` / ``edit`` / ``delete``. Another account's objects are 404.
"""

from __future__ import annotations

from typing import Any

from django.db.models import Prefetch, QuerySet
from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from cdp_site.api.errors import APIError
from cdp_site.api.viewsets import AccountScopedViewSet
from experiences import lifecycle, report
from experiences.api import serializers as s
from experiences.bandit_schedule import reweight_now, schedule_status
from experiences.models import Experience, ExperienceGoal, Goal, Variant

EXPERIENCE_KEY = r"[A-Za-z0-9][A-Za-z0-9_.:-]*"
REFUSED = {400: s.ExperienceRefusalSerializer, 409: s.ExperienceRefusalSerializer}
MAX_PHASE = 1_000_000
PHASE_PARAMETER = OpenApiParameter(
    "phase", int, description="The phase number (default: the current phase); 400 "
    "invalid_phase if not a positive number, 404 no_results if the experience has no such "
    "phase or never ran.")


class CSVRenderer(BaseRenderer):
    """Lets a client ask for ``Accept: text/csv``; the CSV itself is built by the view (an
    error is answered as JSON text)."""

    media_type = "text/csv"
    format = "csv"

    def render(self, data: Any, accepted_media_type: str | None = None,
               renderer_context: Any = None) -> bytes:
        return JSONRenderer().render(data)


class LifecycleRefusals(APIView):
    """Answers a refused change (``lifecycle.ExperienceError``) in the API's error shape."""

    def handle_exception(self, exc: Exception) -> Response:
        if isinstance(exc, lifecycle.ExperienceError):
            return Response(exc.as_dict(), status=exc.status)
        return super().handle_exception(exc)


def _changes(serializer_class: type, data: Any, *, partial: bool) -> dict[str, Any]:
    serializer = serializer_class(data=data, partial=partial)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


class ExperienceViewSet(
    LifecycleRefusals, AccountScopedViewSet[Experience], mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
):
    """A/B tests, bandits and segmented experiences with their variants and goals.
    ``?status=``, ``?type=``, ``?q=`` (part of the key or name) filter the list."""

    model = Experience
    serializer_class = s.ExperienceSerializer
    permission_feature = "experiences"
    lookup_field = "key"
    lookup_value_regex = EXPERIENCE_KEY
    action_permissions = {
        "activate": "edit", "pause": "edit", "resume": "edit", "complete": "edit",
        "split": "edit", "phases": "view", "check": "view", "results": "view",
        "results_csv": "view", "reweight": "edit",
    }

    def scope_queryset(self, queryset: QuerySet) -> QuerySet:
        # one Prefetch per call: the stubs type a call's Prefetches as one queryset type
        queryset = queryset.select_related("winner").prefetch_related(
            Prefetch("variants", queryset=Variant.objects.select_related("audience")),
        ).prefetch_related(
            Prefetch("experience_goals", queryset=ExperienceGoal.objects.select_related("goal")),
            "target_audiences",
        ).order_by("-created_at", "-id")
        if self.action == "list":
            params = self.request.query_params
            for name in ("status", "type"):
                if params.get(name):
                    queryset = queryset.filter(**{name: params[name]})
            q = params.get("q", "").strip()[:100]
            if q:
                queryset = queryset.filter(key__icontains=q) | queryset.filter(name__icontains=q)
        return queryset

    def _answer(self, exp: Experience, code: int = status.HTTP_200_OK) -> Response:
        fresh = self.get_queryset().get(pk=exp.pk)
        return Response(s.ExperienceSerializer(fresh).data, status=code)

    @extend_schema(request=s.ExperienceInputSerializer,
                   responses={201: s.ExperienceSerializer, **REFUSED})
    def create(self, request: Request) -> Response:
        """A new draft (short uid "a", "b", …; variants "0", "1", …)."""
        changes = _changes(s.ExperienceInputSerializer, request.data, partial=False)
        changes.pop("reason", None)
        exp = lifecycle.create_experience(self.actor.account, self.actor, **changes)
        return self._answer(exp, status.HTTP_201_CREATED)

    @extend_schema(request=s.ExperienceInputSerializer,
                   responses={200: s.ExperienceSerializer, **REFUSED})
    def partial_update(self, request: Request, key: str | None = None) -> Response:
        """Change fields; ``variants`` (the whole list, matched by uid or key), ``goals`` and
        ``target_audiences`` replace the current ones. While live, a change of the split
        starts a new phase, and the result must still be runnable."""
        changes = _changes(s.ExperienceInputSerializer, request.data, partial=True)
        return self._answer(lifecycle.update_experience(self.get_object(), self.actor,
                                                        **changes))

    @extend_schema(request=s.ExperienceInputSerializer,
                   responses={200: s.ExperienceSerializer, **REFUSED})
    def update(self, request: Request, key: str | None = None) -> Response:
        changes = _changes(s.ExperienceInputSerializer, request.data, partial=False)
        return self._answer(lifecycle.update_experience(self.get_object(), self.actor,
                                                        **changes))

    @extend_schema(responses={204: None, 409: s.ExperienceRefusalSerializer})
    def destroy(self, request: Request, key: str | None = None) -> Response:
        """Delete it with its assignments and results (an active one must be paused first)."""
        lifecycle.delete_experience(self.get_object(), self.actor)
        return Response(status=status.HTTP_204_NO_CONTENT)

    def _act(self, name: str, **kwargs: Any) -> Response:
        return self._answer(lifecycle.ACTIONS[name](self.get_object(), self.actor, **kwargs))

    @extend_schema(request=None, responses={200: s.ExperienceSerializer, **REFUSED})
    @action(detail=True, methods=["post"])
    def activate(self, request: Request, key: str | None = None) -> Response:
        """Start a draft (phase 1), or refuse with every problem (``activation_refused``)."""
        return self._act("activate")

    @extend_schema(request=None, responses={200: s.ExperienceSerializer, **REFUSED})
    @action(detail=True, methods=["post"])
    def pause(self, request: Request, key: str | None = None) -> Response:
        """Everyone gets the base variant until it resumes."""
        return self._act("pause")

    @extend_schema(request=None, responses={200: s.ExperienceSerializer, **REFUSED})
    @action(detail=True, methods=["post"])
    def resume(self, request: Request, key: str | None = None) -> Response:
        return self._act("resume")

    @extend_schema(request=s.CompleteInputSerializer,
                   responses={200: s.ExperienceSerializer, **REFUSED})
    @action(detail=True, methods=["post"])
    def complete(self, request: Request, key: str | None = None) -> Response:
        """End it; ``winner`` (a variant key or uid) is then served to everyone."""
        values = _changes(s.CompleteInputSerializer, request.data, partial=False)
        return self._act("complete", winner_key=values.get("winner") or None)

    @extend_schema(request=s.SplitInputSerializer,
                   responses={200: s.ExperienceSerializer, **REFUSED})
    @action(detail=True, methods=["post"])
    def split(self, request: Request, key: str | None = None) -> Response:
        """Set custom weights and/or the traffic allocation; while live, a new phase."""
        values = _changes(s.SplitInputSerializer, request.data, partial=False)
        return self._answer(lifecycle.update_split(self.get_object(), self.actor, **values))

    @extend_schema(responses=s.PhaseSerializer(many=True))
    @action(detail=True, methods=["get"])
    def phases(self, request: Request, key: str | None = None) -> Response:
        """Every phase, first to current, with its split and why it started."""
        exp = self.get_object()
        return Response(s.PhaseSerializer(exp.phases.order_by("number"), many=True).data)

    @extend_schema(responses=s.ActivationCheckSerializer)
    @action(detail=True, methods=["get"])
    def check(self, request: Request, key: str | None = None) -> Response:
        """Whether it could run as it is, and every problem if not."""
        problems = lifecycle.activation_problems(self.get_object())
        return Response({"ready": not problems, "problems": problems})


    def _report(self, request: Request) -> dict[str, Any]:
        exp = self.get_object()
        raw = request.query_params.get("phase", "")
        number = None
        if raw:
            if not raw.isdigit() or not 0 < int(raw) <= MAX_PHASE:
                raise APIError("invalid_phase", "phase is a phase number (1, 2, …).")
            number = int(raw)
        found = report.results_report(exp, number)
        if found is None:
            raise APIError("no_results", f"The experience has no phase {raw}." if number else
                           "The experience has not run yet: there are no results.", 404)
        return found

    @extend_schema(parameters=[PHASE_PARAMETER],
                   responses={200: s.ResultsSerializer, 400: s.ErrorSerializer,
                              404: s.ErrorSerializer})
    @action(detail=True, methods=["get"])
    def results(self, request: Request, key: str | None = None) -> Response:
        """The results of one phase (the current one by default), as the results page shows
        them at full precision: per variant visitors, impressions, conversions, rate,
        comparisons against control; per goal the same; SRM, the winner suggestion,
        data-quality warnings, ``as_of`` and the engine's settings."""
        return Response(self._report(request))

    @extend_schema(parameters=[PHASE_PARAMETER],
                   responses={(200, "text/csv"): OpenApiTypes.STR, 400: s.ErrorSerializer,
                              404: s.ErrorSerializer})
    @action(detail=True, methods=["get"], url_path="results/csv",
            renderer_classes=[JSONRenderer, CSVRenderer])
    def results_csv(self, request: Request, key: str | None = None) -> HttpResponse:
        """The same results as CSV: one row per goal and variant (a download)."""
        found = self._report(request)
        response = HttpResponse(report.results_csv(found), content_type="text/csv; charset=utf-8")
        name = f"{found['experience']}-phase-{found['phase']}-results.csv"
        response["Content-Disposition"] = f'attachment; filename="{name}"'
        return response

    @extend_schema(request=None, responses={200: s.ReweightSerializer, 409: REFUSED[409]})
    @action(detail=True, methods=["post"])
    def reweight(self, request: Request, key: str | None = None) -> Response:
        """A bandit: recompute its weights now, whatever its burn-in and interval. Refused
        (409) with ``too_few_visitors`` until every variant has 100 visitors who saw it,
        ``not_running`` unless active, ``not_a_bandit`` for other experiences."""
        exp = self.get_object()
        outcome = reweight_now(exp, self.actor)
        return Response({"reason": outcome.reason, "weights": outcome.weights,
                         "arms": outcome.arms, "bandit": schedule_status(exp)})


class GoalViewSet(
    LifecycleRefusals, AccountScopedViewSet[Goal], mixins.ListModelMixin, mixins.RetrieveModelMixin
):
    """Conversion goals: an event name, property conditions and (optionally) a stream."""

    model = Goal
    serializer_class = s.GoalSerializer
    permission_feature = "goals"
    lookup_field = "key"
    lookup_value_regex = r"[-a-zA-Z0-9_]+"

    def scope_queryset(self, queryset: QuerySet) -> QuerySet:
        return queryset.prefetch_related("experiences").order_by("name", "id")

    @extend_schema(request=s.GoalInputSerializer, responses={201: s.GoalSerializer, **REFUSED})
    def create(self, request: Request) -> Response:
        values = _changes(s.GoalInputSerializer, request.data, partial=False)
        goal = lifecycle.create_goal(self.actor.account, self.actor, **values)
        return Response(s.GoalSerializer(self.get_queryset().get(pk=goal.pk)).data,
                        status=status.HTTP_201_CREATED)

    @extend_schema(request=s.GoalInputSerializer, responses={200: s.GoalSerializer, **REFUSED})
    def partial_update(self, request: Request, key: str | None = None) -> Response:
        values = _changes(s.GoalInputSerializer, request.data, partial=True)
        goal = lifecycle.update_goal(self.get_object(), self.actor, **values)
        return Response(s.GoalSerializer(self.get_queryset().get(pk=goal.pk)).data)

    @extend_schema(request=s.GoalInputSerializer, responses={200: s.GoalSerializer, **REFUSED})
    def update(self, request: Request, key: str | None = None) -> Response:
        values = _changes(s.GoalInputSerializer, request.data, partial=False)
        goal = lifecycle.update_goal(self.get_object(), self.actor, **values)
        return Response(s.GoalSerializer(self.get_queryset().get(pk=goal.pk)).data)

    @extend_schema(responses={204: None, 409: s.ExperienceRefusalSerializer})
    def destroy(self, request: Request, key: str | None = None) -> Response:
        """Refused (``goal_in_use``) while an experience measures it."""
        lifecycle.delete_goal(self.get_object(), self.actor)
        return Response(status=status.HTTP_204_NO_CONTENT)
