"""The profiles API: streams and the stream explorer, failed events, tracking plans, account
usage. Thin views over profiles.explorer.streams, profiles.collection.plans and
profiles.collection.usage; scoping and
permissions come from the base classes (feature ``schema``; usage and notices: ``admin``)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from django.db.models import QuerySet
from django.http import Http404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from cdp_site.api.errors import APIError
from cdp_site.api.viewsets import AccountAPIView, AccountScopedViewSet
from profiles.collection import plans, usage
from profiles.explorer import streams
from profiles.explorer.api import serializers as s
from profiles.explorer.api.filters import (
    FailedEventFilter,
    RawKeyFilter,
    StreamFilter,
    TrackingPlanFilter,
)
from profiles.models import AccountNotice, FailedEvent, RawKey, Stream, TrackingPlan

STREAM_NAME = r"[-a-zA-Z0-9_]+"


@contextmanager
def refusals() -> Iterator[None]:
    """Services refuse with (code, message, status); answer in the API's error shape."""
    try:
        yield
    except (streams.StreamError, plans.PlanError) as error:
        raise APIError(error.code, error.message, error.status) from None


def _int_param(request: Request, name: str, default: int | None, low: int, high: int
               ) -> int | None:
    raw = request.query_params.get(name)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError:
        raise APIError("invalid", f"{name} must be a whole number.") from None
    if not low <= value <= high:
        raise APIError("invalid", f"{name} must be between {low} and {high}.")
    return value


class StreamViewSet(
    AccountScopedViewSet[Stream], mixins.ListModelMixin, mixins.RetrieveModelMixin
):
    """The account's streams with their last message time and events in the last 24 hours;
    per stream: the ingress series, the latest events and tracking plan violations."""

    model = Stream
    serializer_class = s.StreamSerializer
    permission_feature = "schema"
    filterset_class = StreamFilter
    lookup_field = "name"
    lookup_value_regex = STREAM_NAME
    action_permissions = {"ingress": "view", "events": "view", "violations": "view"}

    def scope_queryset(self, queryset: QuerySet) -> QuerySet:
        return streams.with_activity(queryset).order_by("name")

    @extend_schema(request=s.StreamCreateSerializer, responses={201: s.StreamSerializer})
    def create(self, request: Request) -> Response:
        serializer = s.StreamCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        with refusals():
            stream = streams.create_stream(self.actor.account, **serializer.validated_data)
        created = self.get_queryset().get(pk=stream.pk)
        return Response(s.StreamSerializer(created).data, status=status.HTTP_201_CREATED)

    @extend_schema(responses={204: None})
    def destroy(self, request: Request, name: str | None = None) -> Response:
        """Delete the stream, its raw keys and tracking plans (refused while a write key
        sends to it); its raw events stay until retention drops them."""
        with refusals():
            streams.delete_stream(self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        parameters=[
            OpenApiParameter("period", str, enum=list(streams.PERIODS), default="24h"),
            OpenApiParameter("bucket", str, enum=list(streams.BUCKETS),
                             description="default: hour for 24h, day for 7d/30d, week for 90d"),
        ],
        responses=s.IngressSerializer,
    )
    @action(detail=True, methods=["get"])
    def ingress(self, request: Request, name: str | None = None) -> Response:
        """Events per hour, day or week over the period (every bucket present, zeros too)."""
        stream = self.get_object()
        with refusals():
            series = streams.ingress_series(
                self.actor.account, stream.name,
                period=request.query_params.get("period") or "24h",
                bucket=request.query_params.get("bucket") or None,
            )
        return Response(s.IngressSerializer(s.ingress_data(stream.name, series)).data)

    @extend_schema(
        parameters=[
            OpenApiParameter("after_id", int, description="only events with a higher id"),
            OpenApiParameter("limit", int, default=streams.LATEST_LIMIT),
        ],
        responses=s.LatestEventsSerializer,
    )
    @action(detail=True, methods=["get"])
    def events(self, request: Request, name: str | None = None) -> Response:
        """The stream's latest raw events, newest first, for the live view: poll with
        ``after_id`` set to the ``last_id`` of the previous answer."""
        stream = self.get_object()
        after_id = _int_param(request, "after_id", None, 0, 2**63 - 1)
        limit = _int_param(request, "limit", streams.LATEST_LIMIT, 1, streams.LATEST_MAX)
        events = streams.latest_events(self.actor.account, stream.name, after_id=after_id,
                                       limit=limit or streams.LATEST_LIMIT)
        last_id = events[0].id if events else after_id
        return Response(s.LatestEventsSerializer({"results": events, "last_id": last_id}).data)

    @extend_schema(
        parameters=[OpenApiParameter("days", int, default=30)],
        responses=s.ViolationSummarySerializer,
    )
    @action(detail=True, methods=["get"])
    def violations(self, request: Request, name: str | None = None) -> Response:
        """Tracking plan violations (events kept with a warning) and blocked events per event
        name over the last ``days`` days."""
        stream = self.get_object()
        days = _int_param(request, "days", 30, 1, 400) or 30
        rows = streams.violation_summary(self.actor.account, stream.name, days=days)
        return Response(s.ViolationSummarySerializer(
            {"stream": stream.name, "days": days, "events": rows}
        ).data)


class RawKeyViewSet(
    AccountScopedViewSet[RawKey], mixins.ListModelMixin, mixins.RetrieveModelMixin
):
    """A stream's raw keys: search ``q``, filters used/common/hidden/type, ``ordering``; the
    detail adds sample values; PATCH ``hidden``."""

    model = RawKey
    permission_feature = "schema"
    filterset_class = RawKeyFilter

    def scope_queryset(self, queryset: QuerySet) -> QuerySet:
        return streams.raw_keys(self.actor.account, self.stream.name, queryset)

    @property
    def stream(self) -> Stream:
        found = Stream.objects.for_account(self.actor.account).filter(
            name=self.kwargs.get("stream", "")
        ).first()
        if found is None:
            raise Http404
        return found

    def get_serializer_class(self) -> type:
        if self.action == "list":
            return s.RawKeySerializer
        return s.RawKeyDetailSerializer

    @extend_schema(request=s.RawKeyUpdateSerializer, responses=s.RawKeyDetailSerializer)
    def partial_update(self, request: Request, stream: str, pk: str | None = None) -> Response:
        raw_key = self.get_object()
        serializer = s.RawKeyUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        streams.set_key_hidden(raw_key, serializer.validated_data["hidden"])
        return Response(s.RawKeyDetailSerializer(raw_key).data)


# Failed events without an account (no or an unknown write key) are the operators': the model
# is not account-scoped, though this view reads only the account's.
class FailedEventViewSet(
    AccountScopedViewSet[FailedEvent],  # type: ignore[type-var]
    mixins.ListModelMixin, mixins.RetrieveModelMixin,
):
    """Messages that could not be accepted, newest first, with the reason; the detail adds
    the (truncated) body. Filters: stream, code, source, stage, since, until."""

    model = FailedEvent
    permission_feature = "schema"
    filterset_class = FailedEventFilter

    def scope_queryset(self, queryset: QuerySet) -> QuerySet:
        if self.action == "list":
            queryset = queryset.defer("body")
        return queryset.order_by("-received_at", "-id")

    def get_serializer_class(self) -> type:
        if self.action == "list":
            return s.FailedEventSerializer
        return s.FailedEventDetailSerializer


class TrackingPlanViewSet(
    AccountScopedViewSet[TrackingPlan], mixins.ListModelMixin, mixins.RetrieveModelMixin
):
    """Tracking plans: a JSON Schema per stream and event name, ``allow`` (violations recorded
    on the event) or ``block`` (the event becomes a failed event)."""

    model = TrackingPlan
    serializer_class = s.TrackingPlanSerializer
    permission_feature = "schema"
    filterset_class = TrackingPlanFilter

    def scope_queryset(self, queryset: QuerySet) -> QuerySet:
        return queryset.order_by("stream", "event", "id")

    def create(self, request: Request) -> Response:
        serializer = s.TrackingPlanSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        with refusals():
            plan = plans.create_plan(self.actor.account, **serializer.validated_data)
        return Response(s.TrackingPlanSerializer(plan).data, status=status.HTTP_201_CREATED)

    def update(self, request: Request, pk: str | None = None, partial: bool = False
               ) -> Response:
        plan = self.get_object()
        serializer = s.TrackingPlanSerializer(plan, data=request.data, partial=partial)
        serializer.is_valid(raise_exception=True)
        with refusals():
            plans.update_plan(plan, **serializer.validated_data)
        return Response(s.TrackingPlanSerializer(plan).data)

    def partial_update(self, request: Request, pk: str | None = None) -> Response:
        return self.update(request, pk, partial=True)

    @extend_schema(responses={204: None})
    def destroy(self, request: Request, pk: str | None = None) -> Response:
        plans.delete_plan(self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)


class NoticeViewSet(AccountScopedViewSet[AccountNotice], mixins.ListModelMixin):
    """What the account's Admins must be told (quota reached, retention dropped data).
    ``?resolved=false`` lists the open ones."""

    model = AccountNotice
    serializer_class = s.NoticeSerializer
    permission_feature = "admin"
    action_permissions = {"resolve": "edit"}

    def scope_queryset(self, queryset: QuerySet) -> QuerySet:
        resolved = self.request.query_params.get("resolved")
        if resolved in ("false", "0"):
            queryset = queryset.filter(resolved_at__isnull=True)
        elif resolved in ("true", "1"):
            queryset = queryset.filter(resolved_at__isnull=False)
        return queryset.order_by("-created_at", "-id")

    @extend_schema(request=None, responses=s.NoticeSerializer)
    @action(detail=True, methods=["post"])
    def resolve(self, request: Request, pk: str | None = None) -> Response:
        return Response(s.NoticeSerializer(usage.resolve_notice(self.get_object())).data)


class UsageView(AccountAPIView):
    """Events received per day and month, this month per stream, the quota and how much of it
    is used, and the open notices (Admins)."""

    action_permissions = {"get": "admin.view"}

    @extend_schema(
        parameters=[OpenApiParameter("months", OpenApiTypes.INT, default=3,
                                     description=f"1 to {usage.MAX_MONTHS}")],
        responses=s.UsageSerializer,
    )
    def get(self, request: Request) -> Response:
        months = _int_param(request, "months", 3, 1, usage.MAX_MONTHS) or 3
        report = usage.usage_report(self.actor.account, months=months)
        return Response(s.UsageSerializer(s.usage_data(report)).data)
