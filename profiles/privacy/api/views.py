"""Data subject requests through the API (issue #14): POST makes one (202, run in the
background), GET polls it, ``/document`` streams an access request's JSON document.
Permission: ``profiles.delete`` (Admin, Data Manager); the document also needs ``pii.view``."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.db.models import Max, Sum
from django.http import StreamingHttpResponse
from django.utils import timezone
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from cdp_site.api.errors import APIError
from cdp_site.api.viewsets import AccountScopedViewSet
from profiles.models import ConsentPurpose, PrivacyRequest, UnknownPurposeCount
from profiles.privacy import requests as service
from profiles.privacy.access import access_document
from profiles.privacy.api import serializers as s
from profiles.privacy.people import person_of_profiles

PERMISSION = "profiles.delete"


class PrivacyRequestViewSet(AccountScopedViewSet[PrivacyRequest], mixins.ListModelMixin,
                            mixins.RetrieveModelMixin):
    """Access, delete, suppress and unsuppress requests, newest first."""

    model = PrivacyRequest
    serializer_class = s.PrivacyRequestSerializer
    action_permissions = {"list": PERMISSION, "retrieve": PERMISSION, "create": PERMISSION,
                          "document": PERMISSION}

    def scope_queryset(self, queryset: Any) -> Any:
        return queryset.order_by("-created_at", "-id")

    @extend_schema(request=s.PrivacyRequestCreateSerializer,
                   responses={202: s.PrivacyRequestSerializer})
    def create(self, request: Request) -> Response:
        data = request.data if isinstance(request.data, dict) else {}
        try:
            made = service.create_request(self.actor, data.get("kind"), data.get("value"),
                                          data.get("field", ""),
                                          suppress=data.get("suppress", True))
        except service.PrivacyRequestError as exc:
            raise APIError(exc.code, exc.message) from None
        return Response(s.PrivacyRequestSerializer(made).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(responses={(200, "application/json"): OpenApiResponse(
        description="Everything held about the person (profiles/privacy/access.py).")})
    @action(detail=True, methods=["get"])
    def document(self, request: Request, pk: str | None = None) -> StreamingHttpResponse:
        """The access document of a done access request, as a download."""
        made = self.get_object()
        if not self.actor.has("pii.view"):
            raise APIError("forbidden", "The access document needs PII view.", 403)
        if made.kind != PrivacyRequest.Kind.ACCESS or made.state != PrivacyRequest.State.DONE:
            raise APIError("not_ready", "Only a done access request has a document.", 409)
        person = person_of_profiles(made.account, made.result.get("profile_ids", []))
        response = StreamingHttpResponse(access_document(made.account, made, person),
                                         content_type="application/json")
        response["Content-Disposition"] = f'attachment; filename="access-{made.pk}.json"'
        return response


class ConsentPurposeViewSet(AccountScopedViewSet[ConsentPurpose], mixins.ListModelMixin,
                            mixins.RetrieveModelMixin, mixins.DestroyModelMixin):
    """The account's consent purposes (account settings: Admins). Once any is listed, consent
    for other purposes in events is counted (``unknown``) and not stored."""

    model = ConsentPurpose
    serializer_class = s.ConsentPurposeSerializer
    permission_feature = "admin"
    lookup_field = "name"
    lookup_value_regex = r"[A-Za-z0-9_-]+"
    action_permissions = {"unknown": "admin.view"}

    def scope_queryset(self, queryset: Any) -> Any:
        return queryset.order_by("name")

    def create(self, request: Request) -> Response:
        serializer = s.ConsentPurposeSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        account = self.actor.account
        name = serializer.validated_data["name"]
        if ConsentPurpose.objects.for_account(account).filter(name=name).exists():
            raise APIError("duplicate", f"The purpose {name!r} exists already.", 409)
        purpose = serializer.save(account=account)
        return Response(s.ConsentPurposeSerializer(purpose).data, status=status.HTTP_201_CREATED)

    def partial_update(self, request: Request, name: str | None = None) -> Response:
        purpose = self.get_object()
        body = request.data if isinstance(request.data, dict) else {}
        data = {k: v for k, v in body.items() if k in ("description", "granted_by_default")}
        serializer = s.ConsentPurposeSerializer(purpose, data=data, partial=True)
        serializer.is_valid(raise_exception=True)
        serializer.save()
        return Response(serializer.data)

    @extend_schema(responses=s.UnknownPurposeSerializer(many=True))
    @action(detail=False, methods=["get"])
    def unknown(self, request: Request) -> Response:
        """Purposes events named that the account does not list, with how many choices were
        dropped in the last 30 days."""
        since = timezone.now().date() - timedelta(days=30)
        rows = (UnknownPurposeCount.objects.for_account(self.actor.account)
                .filter(day__gte=since).values("purpose")
                .annotate(events=Sum("events"), last_day=Max("day")).order_by("-events",
                                                                                "purpose"))
        return Response(s.UnknownPurposeSerializer(list(rows), many=True).data)
