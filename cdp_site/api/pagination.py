"""Pagination that refuses unordered querysets (their pages would overlap and skip rows)."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.db.models import QuerySet
from rest_framework.pagination import LimitOffsetPagination


class QuerySetNotOrdered(ImproperlyConfigured):
    pass


class OrderedLimitOffsetPagination(LimitOffsetPagination):
    default_limit = 50
    max_limit = 1000

    def paginate_queryset(self, queryset: Any, request: Any, view: Any = None) -> Any:
        if isinstance(queryset, QuerySet) and not queryset.ordered:
            raise QuerySetNotOrdered(
                f"Paginating an unordered queryset of {queryset.model.__name__}; add an ordering."
            )
        return super().paginate_queryset(queryset, request, view)
