"""The calculated attributes API (/api/v1/calculated-attributes/, lookup by name): thin views
over ``profiles.calculated.attributes``. Calculated attributes are used in audience rules, so they
take
the audience permissions: ``audiences.view`` to read, ``audiences.edit`` to create and
change, ``audiences.delete`` to delete. A refused definition answers 400 with
``{"code", "message", "field"}`` and changes nothing."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status
from rest_framework.request import Request
from rest_framework.response import Response

from cdp_site.api.viewsets import AccountScopedViewSet
from profiles.calculated import attributes as calculated
from profiles.calculated.api import serializers as s
from profiles.models import CalculatedAttribute

REFUSED = {400: s.ErrorSerializer}


class CalculatedAttributeViewSet(
    AccountScopedViewSet[CalculatedAttribute], mixins.ListModelMixin, mixins.RetrieveModelMixin
):
    """Windowed aggregates of profile events (docs/calculated-attributes.md), with the state
    of their background computation (``status``, ``progress``, ``error``)."""

    model = CalculatedAttribute
    serializer_class = s.CalculatedAttributeSerializer
    permission_feature = "audiences"
    lookup_field = "name"
    lookup_value_regex = r"[A-Za-z0-9_-]+"

    def scope_queryset(self, queryset: Any) -> Any:
        return queryset.order_by("name")

    def handle_exception(self, exc: Exception) -> Response:
        if isinstance(exc, calculated.AttributeDefinitionError):
            return Response(s.error_body(exc), status=status.HTTP_400_BAD_REQUEST)
        return super().handle_exception(exc)

    def _answer(self, attr: CalculatedAttribute, code: int = status.HTTP_200_OK) -> Response:
        attr.refresh_from_db()
        return Response(s.CalculatedAttributeSerializer(attr).data, status=code)

    @staticmethod
    def _data(request: Request) -> dict[str, Any]:
        if not isinstance(request.data, dict):
            raise calculated.AttributeDefinitionError("invalid", "Send a JSON object.")
        return dict(request.data)

    @extend_schema(request=s.CalculatedAttributeWriteSerializer,
                   responses={201: s.CalculatedAttributeSerializer, **REFUSED})
    def create(self, request: Request) -> Response:
        """Define an attribute; its values are computed from stored events in the
        background (``status`` pending, then backfilling, then ready)."""
        attr = calculated.save_attribute(self.actor.account, self._data(request),
                                         actor=self.actor)
        return self._answer(attr, status.HTTP_201_CREATED)

    @extend_schema(request=s.CalculatedAttributeWriteSerializer,
                   responses={200: s.CalculatedAttributeSerializer, **REFUSED})
    def update(self, request: Request, name: str | None = None) -> Response:
        """Change it (a changed definition is computed again in the background)."""
        attr = calculated.save_attribute(self.actor.account, self._data(request),
                                         instance=self.get_object(), actor=self.actor)
        return self._answer(attr)

    @extend_schema(request=s.CalculatedAttributeWriteSerializer,
                   responses={200: s.CalculatedAttributeSerializer, **REFUSED})
    def partial_update(self, request: Request, name: str | None = None) -> Response:
        return self.update(request, name)

    @extend_schema(responses={204: None})
    def destroy(self, request: Request, name: str | None = None) -> Response:
        """Delete the attribute and its values."""
        calculated.delete_attribute(self.get_object(), self.actor)
        return Response(status=status.HTTP_204_NO_CONTENT)
