"""The connectors management API (under /api/v1/): authorizations, jobs (with their runs and
log, pause / resume / run now, test connection), the kinds and the account's connector
settings. Thin views over ``connectors.authorizations`` and ``connectors.jobs``; a refused
input answers 400 ``{"code", "message", "field"}`` and changes nothing.

Permissions (feature ``jobs``, ROLES.md): reading needs ``view``; creating, editing, pausing,
resuming, running and testing ``edit``; deleting ``delete``. Another account's objects are
404."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from cdp_site.api.viewsets import AccountAPIView, AccountScopedViewSet
from connectors import authorizations, jobs
from connectors.api import serializers as s
from connectors.errors import ConnectorError, InvalidInput
from connectors.models import Authorization, ConnectorSettings, Job
from connectors.registry import kinds


class RefusalsAsErrors(APIView):
    def handle_exception(self, exc: Exception) -> Response:
        if isinstance(exc, InvalidInput):
            code = 409 if exc.code == "authorization_in_use" else 400
            return Response({"code": exc.code, "message": str(exc), "field": exc.path},
                            status=code)
        return super().handle_exception(exc)


def _valid(serializer_class: type, data: Any) -> dict[str, Any]:
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


class AuthorizationViewSet(RefusalsAsErrors, AccountScopedViewSet[Authorization],
                           mixins.ListModelMixin, mixins.RetrieveModelMixin):
    """Credentials for external systems; secrets go in and never come out."""

    model = Authorization
    serializer_class = s.AuthorizationSerializer
    permission_feature = "jobs"
    action_permissions = {"secret": "edit"}

    def scope_queryset(self, queryset: QuerySet[Authorization]) -> QuerySet[Authorization]:
        return queryset.order_by("name", "id")

    @extend_schema(request=s.AuthorizationCreateSerializer,
                   responses={201: s.AuthorizationCreatedSerializer})
    def create(self, request: Request) -> Response:
        data = _valid(s.AuthorizationCreateSerializer, request.data)
        new = authorizations.create_authorization(self.actor.account, self.actor, **data)
        body = s.AuthorizationSerializer(new.obj).data | {"signing_secret": new.signing_secret}
        return Response(body, status=status.HTTP_201_CREATED)

    @extend_schema(request=s.SecretReplaceSerializer,
                   responses={200: s.AuthorizationCreatedSerializer})
    @action(detail=True, methods=["post"])
    def secret(self, request: Request, pk: str | None = None) -> Response:
        """Replace the secret parts (and, if asked, the signing secret, shown once)."""
        data = _valid(s.SecretReplaceSerializer, request.data)
        new = authorizations.replace_secret(self.get_object(), self.actor, data["secret"],
                                            new_signing_secret_too=data["new_signing_secret"])
        return Response(s.AuthorizationSerializer(new.obj).data
                        | {"signing_secret": new.signing_secret})

    def destroy(self, request: Request, pk: str | None = None) -> Response:
        authorizations.delete_authorization(self.get_object(), self.actor)
        return Response(status=status.HTTP_204_NO_CONTENT)


class JobViewSet(RefusalsAsErrors, AccountScopedViewSet[Job], mixins.ListModelMixin,
                 mixins.RetrieveModelMixin):
    """Imports, exports and enrichment jobs. ``?state=`` and ``?kind=`` filter the list."""

    model = Job
    serializer_class = s.JobSerializer
    permission_feature = "jobs"
    action_permissions = {"pause": "edit", "resume": "edit", "run": "edit", "runs": "view",
                          "log": "view", "test_connection": "edit"}

    def scope_queryset(self, queryset: QuerySet[Job]) -> QuerySet[Job]:
        queryset = queryset.select_related("authorization").order_by("name", "id")
        if self.action == "list":
            for name in ("state", "kind"):
                value = self.request.query_params.get(name)
                if value:
                    queryset = queryset.filter(**{name: value})
        return queryset

    @extend_schema(request=s.JobWriteSerializer, responses={201: s.JobSerializer})
    def create(self, request: Request) -> Response:
        data = _valid(s.JobWriteSerializer, request.data)
        job = jobs.create_job(self.actor.account, self.actor,
                              authorization_id=data.pop("authorization"), **data)
        return Response(s.JobSerializer(job).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=s.JobWriteSerializer(partial=True), responses={200: s.JobSerializer})
    def partial_update(self, request: Request, pk: str | None = None) -> Response:
        serializer = s.JobWriteSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        changes = dict(serializer.validated_data)
        changes.pop("kind", None)
        if "authorization" in changes:
            changes["authorization_id"] = changes.pop("authorization")
        job = jobs.update_job(self.get_object(), self.actor, **changes)
        return Response(s.JobSerializer(job).data)

    def destroy(self, request: Request, pk: str | None = None) -> Response:
        jobs.delete_job(self.get_object(), self.actor)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=None, responses={200: s.JobSerializer})
    @action(detail=True, methods=["post"])
    def pause(self, request: Request, pk: str | None = None) -> Response:
        return Response(s.JobSerializer(jobs.pause_job(self.get_object(), self.actor)).data)

    @extend_schema(request=None, responses={200: s.JobSerializer})
    @action(detail=True, methods=["post"])
    def resume(self, request: Request, pk: str | None = None) -> Response:
        return Response(s.JobSerializer(jobs.resume_job(self.get_object(), self.actor)).data)

    @extend_schema(request=None, responses={202: s.JobSerializer})
    @action(detail=True, methods=["post"])
    def run(self, request: Request, pk: str | None = None) -> Response:
        """Run now (a worker picks it up within seconds)."""
        job = jobs.run_now(self.get_object(), self.actor)
        return Response(s.JobSerializer(job).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(responses={200: s.JobRunSerializer(many=True)})
    @action(detail=True, methods=["get"])
    def runs(self, request: Request, pk: str | None = None) -> Response:
        """The last 100 runs and their counts (the metrics chart)."""
        rows = self.get_object().runs.order_by("-started_at", "-id")[:100]
        return Response(s.JobRunSerializer(rows, many=True).data)

    @extend_schema(responses={200: s.JobLogEntrySerializer(many=True)})
    @action(detail=True, methods=["get"])
    def log(self, request: Request, pk: str | None = None) -> Response:
        """The last 200 log entries, newest first."""
        rows = self.get_object().log.order_by("-at", "-id")[:200]
        return Response(s.JobLogEntrySerializer(rows, many=True).data)

    @extend_schema(request=s.TestConnectionSerializer, responses={200: s.TestResultSerializer})
    @action(detail=False, methods=["post"], url_path="test-connection")
    def test_connection(self, request: Request) -> Response:
        """One real call with an unsaved configuration: ``ok`` and what happened."""
        data = _valid(s.TestConnectionSerializer, request.data)
        try:
            message = jobs.test_connection(self.actor.account, self.actor, kind=data["kind"],
                                           authorization_id=data["authorization"],
                                           config=data["config"])
        except ConnectorError as exc:
            return Response({"ok": False, "code": exc.code, "message": exc.message})
        return Response({"ok": True, "message": message})


class KindListView(AccountAPIView):
    """The job kinds and the configuration each accepts (a JSON Schema)."""

    permission_feature = "jobs"
    action_permissions = {"get": "view"}

    @extend_schema(responses={200: s.KindSerializer(many=True)})
    def get(self, request: Request) -> Response:
        return Response([
            {"key": kind.key, "name": kind.label, "description": kind.description,
             "authorization_kind": kind.authorization_kind, "config_schema": kind.config_schema}
            for kind in sorted(kinds().values(), key=lambda k: k.key)])


class ConnectorSettingsView(RefusalsAsErrors, AccountAPIView):
    """The account's outbound allowlist and alert webhook."""

    permission_feature = "jobs"
    action_permissions = {"get": "view", "put": "edit"}

    @extend_schema(responses={200: s.ConnectorSettingsSerializer})
    def get(self, request: Request) -> Response:
        row, _ = ConnectorSettings.objects.get_or_create(account=self.actor.account)
        return Response(s.ConnectorSettingsSerializer(row).data)

    @extend_schema(request=s.ConnectorSettingsSerializer,
                   responses={200: s.ConnectorSettingsSerializer})
    def put(self, request: Request) -> Response:
        row, _ = ConnectorSettings.objects.get_or_create(account=self.actor.account)
        serializer = s.ConnectorSettingsSerializer(row, data=request.data)
        serializer.is_valid(raise_exception=True)
        serializer.save()
        return Response(serializer.data)
