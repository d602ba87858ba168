"""Data for the audience page tests: an account with the Lytics schema, a few people (fields,
identifiers, events, consent), audiences with members and size history, and members of each
role that matters (admin, marketer without PII view, data manager without audiences)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.utils import timezone

from audiences.models import Audience, AudienceMembership, AudienceSize
from cdp_site.models import Account
from profiles.models import (
    AttributeValue,
    CalculatedAttribute,
    Identifier,
    Profile,
    ProfileConsent,
    ProfileEvent,
)
from profiles.schema.lytics import install_lytics_schema
from tests.conftest import make_user

EMAIL = "jane.cook@example.com"
MASKED_EMAIL = "j***@example.com"
OTHER_EMAIL = "paul.nocook@example.com"


@dataclass
class World:
    account: Account
    profiles: dict[str, Profile] = field(default_factory=dict)
    audiences: dict[str, Audience] = field(default_factory=dict)


def person(account: Account, values: dict[str, Any], *, email: str | None = None,
           cookie: str | None = None) -> Profile:
    now = timezone.now()
    profile = Profile.objects.create(account=account, field_values=values,
                                     first_seen=now - timedelta(days=3), last_seen=now)
    for name, value in (("email", email), ("_uid", cookie)):
        if value:
            Identifier.objects.create(account=account, field=name, value=value,
                                      profile=profile, first_seen=now, last_seen=now)
    return profile


def audience(account: Account, slug: str, name: str, rule: dict[str, Any], *,
             members: list[Profile] = (), sizes: list[int] = (), **extra: Any) -> Audience:
    now = timezone.now()
    made = Audience.objects.create(account=account, slug=slug, name=name, rule=rule,
                                   status=Audience.Status.READY, progress=1.0,
                                   size=len(members), computed_at=now, **extra)
    for profile in members:
        AudienceMembership.objects.create(account=account, audience=made, profile=profile)
    for i, size in enumerate(sizes):
        AudienceSize.objects.create(account=account, audience=made, size=size,
                                    at=now - timedelta(hours=len(sizes) - i))
    return made


def build_world(account: Account) -> World:
    install_lytics_schema(account)
    world = World(account)
    cook = person(account, {"email": EMAIL, "_uid": ["c-1"], "taxonomy": "cuisine",
                            "loyalty_tier": "Gold",
                            "preferred_activities": ["Parasailing", "=cmd|' /C calc'!A0"]},
                  email=EMAIL, cookie="c-1")
    anonymous_cook = person(account, {"_uid": ["c-2"], "taxonomy": "Cuisine"}, cookie="c-2")
    traveller = person(account, {"email": OTHER_EMAIL, "taxonomy": "travel"},
                       email=OTHER_EMAIL)
    world.profiles = {"cook": cook, "anonymous_cook": anonymous_cook, "traveller": traveller}
    now = timezone.now()
    ProfileEvent.objects.create(account=account, profile=cook, raw_event_id=1, stream="web",
                                event="added_to_cart", at=now - timedelta(days=1),
                                properties={"sku": "A1", "price": 12})
    ProfileConsent.objects.create(account=account, profile=cook, purpose="email",
                                  granted=True, at=now)
    cart_value = CalculatedAttribute.objects.create(
        account=account, name="cart_value_7d", description="Value added to carts, 7 days.",
        aggregate="sum", event="added_to_cart", property="price", window_days=7)
    AttributeValue.objects.create(account=account, attribute=cart_value, profile=cook,
                                  name="cart_value_7d", value=12)
    CalculatedAttribute.objects.create(account=account, name="last_cart", aggregate="last",
                                       event="added_to_cart", window_days=90)
    cuisine = audience(account, "cuisine", "Cuisine readers",
                       {"field": "taxonomy", "op": "=", "value": "cuisine"},
                       members=[cook, anonymous_cook], sizes=[0, 1, 1, 2])
    known = audience(account, "known_cooks", "Known cooks",
                     {"and": [{"audience": "cuisine", "op": "include"},
                              {"field": "email", "op": "exists"}]},
                     members=[cook], sizes=[1], api_accessible=True,
                     description="Cuisine readers we can email.")
    world.audiences = {"cuisine": cuisine, "known_cooks": known}
    return world


def users(account: Account) -> dict[str, Any]:
    return {
        "admin": make_user("ada", account, roles=["admin"]),
        "marketer": make_user("mark", account, roles=["marketer"]),
        "observer": make_user("otto", account, roles=["observer"]),
        "data_manager": make_user("dora", account, roles=["data_manager"]),
    }
