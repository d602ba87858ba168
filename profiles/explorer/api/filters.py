"""FilterSets of the profiles API: an allowlist of fields and lookups per list."""

from __future__ import annotations

from django.db.models import QuerySet
from django_filters import rest_framework as filters

from profiles.explorer.streams import filter_common
from profiles.models import FailedEvent, RawKey, Stream, TrackingPlan

KEY_ORDERINGS = {
    "key": ("key",),
    "-times_seen": ("-times_seen", "key"),
    "times_seen": ("times_seen", "key"),
    "-last_seen": ("-last_seen", "key"),
    "-first_seen": ("-first_seen", "key"),
    "first_seen": ("first_seen", "key"),
    "predicted_type": ("predicted_type", "key"),
}


class StreamFilter(filters.FilterSet):
    q = filters.CharFilter(field_name="name", lookup_expr="icontains")

    class Meta:
        model = Stream
        fields: list[str] = []


class RawKeyFilter(filters.FilterSet):
    q = filters.CharFilter(field_name="key", lookup_expr="icontains",
                           help_text="Part of the key path.")
    used = filters.BooleanFilter(method="filter_used",
                                 help_text="Read by at least one mapping (true) or none (false).")
    common = filters.BooleanFilter(
        method="filter_common",
        help_text="Seen in at least 10 % of the stream's events (true) or fewer (false).",
    )
    hidden = filters.BooleanFilter()
    type = filters.CharFilter(field_name="predicted_type")
    ordering = filters.ChoiceFilter(
        choices=[(name, name) for name in KEY_ORDERINGS], method="filter_ordering"
    )

    class Meta:
        model = RawKey
        fields: list[str] = []

    def filter_used(self, queryset: QuerySet, name: str, value: bool) -> QuerySet:
        if value:
            return queryset.filter(times_used_by_mappings__gt=0)
        return queryset.filter(times_used_by_mappings=0)

    def filter_common(self, queryset: QuerySet, name: str, value: bool) -> QuerySet:
        return filter_common(queryset, value)

    def filter_ordering(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        return queryset.order_by(*KEY_ORDERINGS[value])


class FailedEventFilter(filters.FilterSet):
    since = filters.IsoDateTimeFilter(field_name="received_at", lookup_expr="gte")
    until = filters.IsoDateTimeFilter(field_name="received_at", lookup_expr="lt")

    class Meta:
        model = FailedEvent
        fields = ["stream", "code", "source", "stage"]


class TrackingPlanFilter(filters.FilterSet):
    class Meta:
        model = TrackingPlan
        fields = ["stream", "event", "mode", "enabled"]
