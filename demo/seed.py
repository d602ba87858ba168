"""The demo accounts `make run` creates: an admin user, the site operator, who belongs to two
accounts."""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction

from audiences.membership import start_compute
from audiences.models import Audience
from cdp_site import access
from cdp_site import accounts as accounts_service
from cdp_site.models import Account, Membership, Role
from cdp_site.tenancy import Actor
from demo.audiences import seed_audiences
from demo.connectors import seed_demo_connectors
from experiences import lifecycle
from experiences.models import Experience, Goal
from profiles.calculated import attributes as calculated
from profiles.models import CalculatedAttribute, Field
from profiles.schema.drafts import save_field, save_mapping
from profiles.schema.lytics import install_lytics_schema
from profiles.schema.versions import diff_schema, publish

# The main account sorts first: it is where a new session lands, and where the demo events go.
DEMO_ACCOUNTS = [("Demo Travel", "demo"), ("Demo Travel Sandbox", "demo-sandbox")]
DEMO_USER = "admin"
# The stream the demo's site sends to: the printed write key's, the demo traffic's (demo.traffic
# sends the website's events on "web") and the demo fields' mappings'. Goals name no stream, so
# conversions count whichever stream they arrive on.
DEMO_STREAM = "web"


@dataclass
class DemoCredentials:
    url: str
    username: str
    password: str
    write_key: str
    account_aid: str


@transaction.atomic
def seed_demo(credentials_file: Path | None = None) -> DemoCredentials:
    """Idempotent: the first run creates the accounts, the user and a write key and keeps their
    secrets in var/demo.json (a development file); later runs print the same ones."""
    path = credentials_file or settings.VAR_DIR / "demo.json"
    stored = json.loads(path.read_text()) if path.exists() else {}
    admin_role = Role.objects.get(code="admin")
    accounts = []
    for name, slug in DEMO_ACCOUNTS:
        account = Account.objects.filter(slug=slug).first()
        if account is None:
            account = accounts_service.create_account(name=name, slug=slug)
        accounts.append(account)
    users = get_user_model().objects
    user = users.filter(username=DEMO_USER).first()
    password = stored.get("password")
    if user is None or not password or not user.check_password(password):
        password = secrets.token_urlsafe(12)
        if user is None:
            user = users.create_user(DEMO_USER, email="admin@example.com", password=password)
        else:
            user.set_password(password)
            user.save(update_fields=["password"])
    if not user.is_superuser:
        # The first user `make run` creates is the site operator (DESIGN.md): it creates,
        # enables and disables accounts and sets their quotas.
        user.is_superuser = user.is_staff = True
        user.save(update_fields=["is_superuser", "is_staff"])
    for account in accounts:
        membership, _ = Membership.objects.get_or_create(account=account, user=user)
        membership.roles.add(admin_role)
    main = accounts[0]
    write_key = str(stored.get("write_key") or "")
    known = access.authenticate_write_key(write_key) if write_key else None
    if known is None or known.stream != DEMO_STREAM:  # older demos printed a "default" key
        actor = Actor(account=main, user=user, role_codes=frozenset({"admin"}))
        write_key = access.create_write_key(
            account=main, actor=actor, name="Demo website", stream=DEMO_STREAM
        ).secret
    seed_demo_audiences(main)  # before the experiences: the segmented one uses "cuisine"
    seed_demo_experiences(main, Actor(account=main, user=user, role_codes=frozenset({"admin"})))
    seed_demo_calculated_attributes(main)
    seed_demo_connectors(main)  # use case 4: the demo CRM and ad partner on loopback
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"password": password, "write_key": write_key}))
    path.chmod(0o600)
    return DemoCredentials(
        url=f"{settings.STRATA_PUBLIC_URL}/admin/", username=DEMO_USER, password=password,
        write_key=write_key, account_aid=main.aid,
    )



# --------------------------------------------------------------------------- experiences

CUISINE_RULE = {"field": "taxonomy", "op": "=", "value": "cuisine"}

DEMO_GOALS = [
    {"key": "trip-booked", "name": "Trip booked", "event": "Trip Booked",
     "description": "A booking on the travel site: the conversion the site lives on."},
    {"key": "newsletter-signup", "name": "Newsletter sign-up", "event": "Newsletter Signed Up",
     "description": "A visitor joined the weekly deals list."},
]

HERO = {"headline": "Explore the world with Demo Travel", "image": "/static/demo/hero-beach.jpg",
        "cta": "See destinations"}

# The three use cases of Contentstack Personalize's guide: an A/B test judged by a conversion
# event, the same as a multi-armed bandit, and a segmented experience for the visitors whose
# page views put them in the taxonomy = "cuisine" audience (anonymous behaviour segmentation).
DEMO_EXPERIENCES: list[dict[str, Any]] = [
    {"key": "homepage-hero", "name": "Homepage hero (A/B test)",
     "description": "Does an autumn-escape hero book more trips than the evergreen one?",
     "variants": [
         {"key": "control", "name": "Evergreen hero", "base": True,
          "value": "Explore the world", "content": HERO},
         {"key": "autumn-escape", "name": "Autumn escape hero",
          "value": "Your autumn escape starts here",
          "content": {**HERO, "headline": "Your autumn escape starts here",
                      "image": "/static/demo/hero-autumn.jpg", "cta": "Book autumn deals"}},
     ],
     "goals": [{"goal": "trip-booked", "primary": True}, {"goal": "newsletter-signup"}]},
    {"key": "book-button", "name": "Book button (multi-armed bandit)", "distribution": "bandit",
     "description": "Traffic shifts to the call to action that books the most trips.",
     "variants": [
         {"key": "book-now", "name": "Book now", "base": True, "value": "Book now",
          "content": {"label": "Book now", "style": "primary"}},
         {"key": "reserve", "name": "Reserve your trip", "value": "Reserve your trip",
          "content": {"label": "Reserve your trip", "style": "primary"}},
         {"key": "check-dates", "name": "Check dates", "value": "Check dates",
          "content": {"label": "Check dates", "style": "outline"}},
     ],
     "goals": [{"goal": "trip-booked", "primary": True}]},
    {"key": "cuisine-banner", "name": "Cuisine interest banner (segmented)",
     "type": "segmented", "value_type": "json",
     "description": "Visitors reading cuisine content see a recipes banner; everyone else the "
                    "travel deals.",
     "variants": [
         {"key": "travel-deals", "name": "Travel deals", "base": True,
          "value": {"headline": "This week's travel deals", "image": "/static/demo/deals.jpg"}},
         {"key": "cuisine", "name": "New Italian recipes", "audience": "cuisine", "priority": 1,
          "value": {"headline": "New Italian recipes", "image": "/static/demo/pasta.jpg"},
          "content": {"link": "/articles/italian-recipes"}},
     ],
     "goals": [{"goal": "newsletter-signup", "primary": True}]},
]


def _cuisine_audience(account: Account) -> str:
    """The audience of the segmented use case: the audiences seed's own when it made one
    (any slug with this rule), else created here as "cuisine"; API accessible either way."""
    found = Audience.objects.filter(account=account, slug="cuisine").first() or next(
        (a for a in Audience.objects.filter(account=account, archived=False)
         if a.rule == CUISINE_RULE), None)
    if found is None:
        found = Audience.objects.create(
            account=account, slug="cuisine", name="Cuisine interest", rule=CUISINE_RULE,
            depends_on=["field:taxonomy"], api_accessible=True,
            description="Visitors whose latest page view was cuisine content.")
        # members among existing profiles (new events are evaluated as they arrive)
        transaction.on_commit(lambda: start_compute(found))
    elif not found.api_accessible:
        Audience.objects.filter(pk=found.pk).update(api_accessible=True)
    return found.slug


def seed_demo_experiences(account: Account, actor: Actor) -> None:
    """The demo's goals and its three experiences, active (idempotent: existing keys are
    left as they are)."""
    for goal in DEMO_GOALS:
        found = Goal.objects.filter(account=account, key=goal["key"]).first()
        if found is None:
            lifecycle.create_goal(account, actor, **goal)
        elif found.stream:  # older demos counted the web stream only
            lifecycle.update_goal(found, actor, stream="")
    cuisine = _cuisine_audience(account)
    for spec in DEMO_EXPERIENCES:
        if Experience.objects.filter(account=account, key=spec["key"]).exists():
            continue
        variants = [{**v, "audience": cuisine} if v.get("audience") == "cuisine" else v
                    for v in spec["variants"]]
        exp = lifecycle.create_experience(account, actor, **{**spec, "variants": variants})
        lifecycle.activate(exp, actor)


def seed_demo_audiences(account: Account) -> None:
    """The seed audiences (demo.audiences) over the Lytics use-case schema, which is installed
    first when missing (seed_demo_events finds it live and publishes nothing)."""
    install_lytics_schema(account)
    seed_audiences(account)


# Event properties the demo's calculated attributes read: mapped to fields so that profile
# events keep them (a calculated attribute reads a profile event's mapped values).
DEMO_EVENT_FIELDS = [("revenue", "number", "sum", "Revenue of trips booked (total)."),
                     ("product_id", "string", "latest", "Product last viewed."),
                     ("destination", "string", "latest", "Destination last searched or booked.")]
DEMO_CALCULATED_ATTRIBUTES: list[dict[str, Any]] = [
    {"name": "1_week_page_views", "aggregate": "count", "event": "page", "window_days": 7,
     "description": "Page views in the last 7 days."},
    {"name": "90_day_revenue", "aggregate": "sum", "event": "Trip Booked",
     "property": "revenue", "window_days": 90,
     "description": "Revenue of trips booked in the last 90 days."},
    {"name": "last_7_days_login", "aggregate": "last", "event": "Signed In", "window_days": 7,
     "description": "Last sign-in in the last 7 days."},
    {"name": "most_viewed_product", "aggregate": "most_frequent", "event": "Product Viewed",
     "property": "product_id", "window_days": 3,
     "description": "Product viewed most often in the last 3 days."},
    {"name": "favourite_destination", "aggregate": "most_frequent",
     "event": "Search Performed", "property": "destination", "window_days": 30,
     "description": "Destination searched most often in the last 30 days."},
]


def seed_demo_calculated_attributes(account: Account) -> None:
    """The issue's example calculated attributes (and one the demo traffic fills), with the
    fields that keep the properties they read; idempotent."""
    have = set(Field.objects.filter(account=account).values_list("name", flat=True))
    for name, ftype, merge, description in DEMO_EVENT_FIELDS:
        if name in have:
            continue
        field = save_field(account, name=name, type=ftype, merge_operator=merge,
                           description=description)
        save_mapping(account, field=field, stream=DEMO_STREAM, expression=f"properties.{name}")
    if diff_schema(account)["has_changes"]:
        publish(account, note="Demo: event properties for calculated attributes")
    defined = set(CalculatedAttribute.objects.filter(account=account)
                  .values_list("name", flat=True))
    for spec in DEMO_CALCULATED_ATTRIBUTES:
        if spec["name"] not in defined:
            calculated.save_attribute(account, spec)
