"""Builders for calculated attribute and consent tests: a shop schema (identifiers plus
``revenue``, ``product_id``, ``currency`` mapped from event properties), events sent through
collect at times relative to now, and the issue's example attributes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from cdp_site.models import Account
from profiles.calculated import attributes as calculated
from profiles.models import AttributeValue, CalculatedAttribute
from profiles.schema.drafts import save_field, save_mapping
from profiles.schema.versions import publish
from tests.profiles.processing import identity_schema, profile_with, run, send

DAY = timedelta(days=1)

EXAMPLES: list[dict[str, Any]] = [
    {"name": "1_week_page_views", "aggregate": "count", "event": "page", "window_days": 7},
    {"name": "90_day_revenue", "aggregate": "sum", "event": "order", "property": "revenue",
     "window_days": 90},
    {"name": "last_7_days_login", "aggregate": "last", "event": "login", "window_days": 7},
    {"name": "most_viewed_product", "aggregate": "most_frequent", "event": "product viewed",
     "property": "product_id", "window_days": 3},
]


def shop_schema(account: Account) -> None:
    """email and `_uid` identifiers, plus revenue (number), product_id and currency (text),
    each mapped from ``properties.*`` on stream web; published."""
    identity_schema(account, extra=False)
    for name, ftype, merge in (("revenue", "number", "sum"), ("product_id", "string", "latest"),
                               ("currency", "string", "latest"), ("coupon", "bool", "latest")):
        field = save_field(account, name=name, type=ftype, merge_operator=merge)
        save_mapping(account, field=field, stream="web",
                     expression=f"properties.{name}")
    publish(account)


def define(account: Account, **data: Any) -> CalculatedAttribute:
    return calculated.save_attribute(account, data)


def now() -> datetime:
    return datetime.now(UTC)


def track(name: str, who: dict[str, str], **properties: Any) -> dict[str, Any]:
    return {"type": "track", "event": name, **who, "properties": properties}


def page(who: dict[str, str], **properties: Any) -> dict[str, Any]:
    return {"type": "page", **who, "properties": properties}


def send_at(account: Account, at: datetime, *messages: dict[str, Any]) -> None:
    send(account, *messages, at=at)


def values_of(account: Account, identifier: str) -> dict[str, Any]:
    profile = profile_with(account, identifier)
    return calculated.profile_attributes(account.pk, profile.pk)


def value_rows(account: Account) -> list[tuple[str, int, Any]]:
    return sorted(AttributeValue.objects.filter(account=account)
                  .values_list("name", "profile_id", "value"))


__all__ = ["DAY", "EXAMPLES", "define", "now", "page", "run", "send_at", "shop_schema", "track",
           "value_rows", "values_of"]
