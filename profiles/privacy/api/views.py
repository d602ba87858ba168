"""Data subject requests through the API (issue #14): POST makes one (202, run in the
background), GET polls it, ``/document`` streams an access request's JSON document.
Permission: ``profiles.delete`` (Admin, Data Manager); the document also needs ``pii.view``."""

from __future__ import annotations

from typing import Any

from django.http import StreamingHttpResponse
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from cdp_site.api.errors import APIError
from cdp_site.api.viewsets import AccountScopedViewSet
from profiles.models import PrivacyRequest
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
