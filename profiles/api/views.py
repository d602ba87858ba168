"""The profile API (PROTOCOLS.md §5): read a profile by any identifier or by id, search, its
timeline and identity explanation, GDPR delete. Thin views over profiles.selectors and
profiles.privacy (a DELETE is a delete request); every value they return passes through the
reader's PII policy (profiles.masking). Permissions: ``profiles.view``; delete
``profiles.delete``; PII unmasked with ``pii.view``. A profile of another account is simply
not found."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.utils.urls import replace_query_param

from cdp_site.api.errors import APIError
from cdp_site.api.pagination import QuerySetNotOrdered
from cdp_site.api.viewsets import AccountAPIView
from profiles import selectors as select
from profiles import writes
from profiles.api import serializers as s
from profiles.masking import PiiPolicy, policy_for_actor
from profiles.models import Profile
from profiles.privacy import requests as privacy
from profiles.privacy.api.serializers import PrivacyRequestSerializer

IDENTITY_LIMIT = 100
IDENTITY_MAX = 1000


class PageWithoutCount(LimitOffsetPagination):
    """limit/offset pages that never count the whole set (an account may hold millions of
    profiles, a profile millions of events): one row more than the page says whether there is
    a next one. A ``limit`` above ``max_limit`` is capped (and one that is not a positive
    number gives the default): the answer's ``limit`` says the page size used."""

    default_limit = 25
    max_limit = 200
    has_more = False

    def paginate_queryset(self, queryset: Any, request: Request, view: Any = None
                          ) -> list[Any]:
        if not queryset.ordered:
            raise QuerySetNotOrdered(f"Paginating an unordered queryset of "
                                     f"{queryset.model.__name__}; add an ordering.")
        limit = self.get_limit(request)  # None only when asked for none and no default
        if limit is None:
            limit = self.default_limit
        offset = self.get_offset(request)
        self.request, self.limit, self.offset = request, limit, offset
        rows = list(queryset[offset:offset + limit + 1])
        self.has_more = len(rows) > limit
        return rows[:limit]

    def get_next_link(self) -> str | None:
        if not self.has_more or self.request is None or self.limit is None \
                or self.offset is None:
            return None
        url = self.request.build_absolute_uri()
        url = replace_query_param(url, self.limit_query_param, self.limit)
        return replace_query_param(url, self.offset_query_param, self.offset + self.limit)

    def get_paginated_response(self, data: Any) -> Response:
        return Response({"limit": self.limit, "next": self.get_next_link(),
                         "previous": self.get_previous_link(), "results": data})

    @classmethod
    def parameters(cls) -> list[OpenApiParameter]:
        """``limit`` and ``offset`` as the schema documents them (the cap included)."""
        return [
            OpenApiParameter("limit", {"type": "integer", "minimum": 1,
                                       "maximum": cls.max_limit}, default=cls.default_limit,
                             description=f"Page size, at most {cls.max_limit}: a larger "
                             "limit is capped, and the answer's limit says the size used."),
            OpenApiParameter("offset", {"type": "integer", "minimum": 0}, default=0)]

    def get_paginated_response_schema(self, schema: dict[str, Any]) -> dict[str, Any]:
        return {
            "type": "object",
            "required": ["limit", "results"],
            "properties": {
                "limit": {"type": "integer", "description": "The page size used (a larger "
                          f"limit asked for is capped at {self.max_limit})."},
                "next": {"type": "string", "nullable": True, "format": "uri"},
                "previous": {"type": "string", "nullable": True, "format": "uri"},
                "results": schema,
            },
        }


class ProfileView(AccountAPIView):
    """Base of the profile views: the reader's PII policy and profile lookups that answer
    404 ``not_found``."""

    action_permissions = {"get": "profiles.view", "delete": "profiles.delete",
                          "patch": "profiles.delete"}

    def policy(self) -> PiiPolicy:
        return policy_for_actor(self.actor)

    def by_identifier(self, field: str, value: str) -> Profile:
        profile = select.profile_by_identifier(self.actor.account, field, value)
        if profile is None:
            raise APIError("not_found", "No profile has this identifier.", 404)
        return profile

    def by_id(self, pk: int) -> Profile:
        profile = select.profile_by_id(self.actor.account, pk)
        if profile is None:
            raise APIError("not_found", "No such profile.", 404)
        return profile


class ProfileSearchView(ProfileView):
    pagination_class = PageWithoutCount

    @extend_schema(
        operation_id="profiles_search",
        parameters=[
            OpenApiParameter("q", str, description=(
                "An identifier value: exact match on every identifier field; from "
                f"{select.PREFIX_MIN} characters also a prefix match (with pii.view for PII "
                "fields). Empty: the most recently seen profiles.")),
            OpenApiParameter("field", str, description="Only this identifier field."),
            *PageWithoutCount.parameters(),
        ],
        responses=s.ProfileSummarySerializer(many=True),
    )
    def get(self, request: Request) -> Response:
        """Search profiles by any identifier value, most recently seen first."""
        account = self.actor.account
        policy = self.policy()
        field = (request.query_params.get("field") or "").strip() or None
        q = request.query_params.get("q") or ""
        queryset = select.search_profiles(account, q, policy, field_name=field)
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(queryset, request, self)
        return paginator.get_paginated_response(select.summaries(page, policy, account))


class ProfileByIdentifierView(ProfileView):
    @extend_schema(operation_id="profiles_by_identifier", responses=s.ProfileSerializer)
    def get(self, request: Request, field: str, value: str) -> Response:
        """A profile by any identifier value (``/profiles/email/ann@example.com``)."""
        profile = self.by_identifier(field, value)
        return Response(select.profile_document(profile, self.policy(), self.actor.account,
                                                 actor=self.actor))

    @extend_schema(operation_id="profiles_update", request=s.ProfileWriteSerializer,
                   responses={202: s.ProfileWriteResultSerializer})
    def patch(self, request: Request, field: str, value: str) -> Response:
        """Write attributes (``{"attributes": {"tier": "gold"}}``) through the pipeline: stored
        as an event on the ``api`` stream, applied when it is processed, with the fields'
        merge operators and identity; audited (field names only). Admins, Data Managers."""
        profile = self.by_identifier(field, value)
        body = request.data if isinstance(request.data, dict) else {}
        try:
            message_id = writes.write_attributes(self.actor, profile, field, value,
                                                 body.get("attributes"))
        except writes.ProfileWriteError as exc:
            raise APIError(exc.code, exc.message) from None
        return Response({"profile_id": profile.pk, "message_id": message_id,
                         "stream": "api"}, status=202)

    @extend_schema(
        operation_id="profiles_delete",
        parameters=[OpenApiParameter("suppress", bool, default=True, description=(
            "Also put the person's identifiers on the suppression list (later events with "
            "them are not collected)."))],
        responses={202: PrivacyRequestSerializer})
    def delete(self, request: Request, field: str, value: str) -> Response:
        """GDPR delete, as a delete request (``/api/v1/privacy-requests/``): run in the
        background, polled by its id; it removes the person the identifier names and
        everything held about them (docs/privacy.md), recorded in the audit log without the
        identifier values."""
        suppress = request.query_params.get("suppress", "true").lower()
        if suppress not in ("true", "false"):
            raise APIError("invalid_suppress", "suppress must be true or false.")
        try:
            made = privacy.create_request(self.actor, "delete", value, field,
                                          suppress=suppress == "true")
        except privacy.PrivacyRequestError as exc:
            raise APIError(exc.code, exc.message) from None
        return Response(PrivacyRequestSerializer(made).data, status=202)


class ProfileByIdView(ProfileView):
    @extend_schema(operation_id="profiles_by_id", responses=s.ProfileSerializer)
    def get(self, request: Request, pk: int) -> Response:
        """A profile by id; the id of a profile merged into another gives the survivor."""
        profile = self.by_id(pk)
        return Response(select.profile_document(profile, self.policy(), self.actor.account,
                                                 actor=self.actor))


class ProfileEventsView(ProfileView):
    pagination_class = PageWithoutCount

    @extend_schema(
        operation_id="profiles_events",
        parameters=PageWithoutCount.parameters(),
        responses=s.ProfileEventSerializer(many=True),
    )
    def get(self, request: Request, pk: int) -> Response:
        """The profile's timeline: its events, newest first (events of profiles merged into
        it included)."""
        profile = self.by_id(pk)
        policy = self.policy()
        catalog = select.field_catalog(self.actor.account)
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(select.profile_events(profile), request, self)
        return paginator.get_paginated_response(
            [select.event_document(event, policy, catalog) for event in page])


class ProfileIdentityView(ProfileView):
    @extend_schema(
        operation_id="profiles_identity",
        parameters=[OpenApiParameter("limit", int, default=IDENTITY_LIMIT,
                                     description=f"Log entries, 1 to {IDENTITY_MAX}.")],
        responses=s.IdentitySerializer,
    )
    def get(self, request: Request, pk: int) -> Response:
        """Why the profile's identifiers are linked: each identifier with the event it first
        came in with; merges with the event that caused them, conflicts and compactions."""
        profile = self.by_id(pk)
        limit = _limit(request, IDENTITY_LIMIT, IDENTITY_MAX)
        story = select.identity_story(profile, self.policy(), self.actor.account, limit=limit)
        return Response(s.IdentitySerializer(story.as_dict()).data)


def _limit(request: Request, default: int, high: int) -> int:
    raw = request.query_params.get("limit")
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError:
        raise APIError("invalid", "limit must be a whole number.") from None
    if not 1 <= value <= high:
        raise APIError("invalid", f"limit must be between 1 and {high}.")
    return value


__all__ = [
    "ProfileByIdView",
    "ProfileByIdentifierView",
    "ProfileEventsView",
    "ProfileIdentityView",
    "ProfileSearchView",
]
