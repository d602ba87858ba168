"""A week of realistic events for the demo account, so the stream explorer has something to show.

Website traffic (page views with the content's taxonomy, searches, trips added to the cart and
purchased, bookings, newsletter sign-ups, identifies with emails) goes to the ``web`` stream as
Segment-spec batches, and a nightly CRM sync (customer records) to ``crm_users`` as JSON
records. Both go through the real collection core: the paths' own parsers
(``profiles.collection.segment``,
``profiles.collection.lytics``) and ``profiles.collection.store.accept`` (tracking plans, dedupe,
failed events),
with received times spread over the past days. Then the aggregator runs once.

First the Lytics use-case schema is installed and published in the account
(``profiles.schema.lytics.install_lytics_schema``), so the processor ``make run`` starts builds
profiles from these events (people identified on the website are found by email on /profiles/).

Idempotent: nothing is sent when the demo streams already hold events (and the schema is
published once; when it is published for events already there, their profiles are rebuilt).
"""

from __future__ import annotations

import math
import random
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from cdp_site import access
from cdp_site.models import Account, WriteKey
from cdp_site.tenancy import Actor
from profiles.collection import lytics, segment
from profiles.collection.messages import QuotaExceeded
from profiles.collection.store import accept
from profiles.explorer.aggregate import aggregate_streams
from profiles.models import RawEvent, TrackingPlan
from profiles.schema.lytics import install_lytics_schema
from profiles.schema.versions import live_version

WEB = "web"
CRM = "crm_users"
SLOT = timedelta(minutes=10)

PAGES = [
    # (path, title, section, category, topics)
    ("/", "Demo Travel: trips worth taking", "Home", "Home", ["travel deals"]),
    ("/destinations/italy/amalfi-coast", "Amalfi Coast: the complete guide", "Destinations",
     "Europe > Italy", ["beaches", "food & wine", "road trips"]),
    ("/destinations/japan/kyoto", "Kyoto in autumn", "Destinations", "Asia > Japan",
     ["culture", "temples", "food & wine"]),
    ("/destinations/portugal/lisbon", "48 hours in Lisbon", "Destinations", "Europe > Portugal",
     ["city breaks", "food & wine"]),
    ("/destinations/iceland/ring-road", "Driving Iceland's Ring Road", "Destinations",
     "Europe > Iceland", ["road trips", "nature"]),
    ("/destinations/mexico/oaxaca", "Oaxaca for food lovers", "Destinations",
     "Americas > Mexico", ["food & wine", "culture"]),
    ("/deals/autumn-city-breaks", "Autumn city breaks from $399", "Deals", "Deals > City breaks",
     ["city breaks", "travel deals"]),
    ("/deals/family-beach-holidays", "Family beach holidays", "Deals", "Deals > Family",
     ["beaches", "family", "travel deals"]),
    ("/guides/packing-list", "The only packing list you need", "Guides", "Guides > Tips",
     ["travel tips"]),
    ("/guides/travel-insurance", "Travel insurance, explained", "Guides", "Guides > Tips",
     ["travel tips"]),
    ("/checkout", "Checkout", "Booking", "Booking", []),
]
# A page's taxonomy (its main subject, as a CMS tags it): what the demo's "cuisine" audience and
# the cuisine banner experience read, as in Lytics' anonymous-behaviour use case.
TAXONOMY = {"food & wine": "cuisine", "beaches": "beach", "culture": "culture",
            "road trips": "road-trips", "city breaks": "city-breaks", "travel deals": "deals",
            "travel tips": "tips"}


def taxonomy_of(path: str, topics: list[str]) -> str:
    """The food pages are about cuisine; the others are tagged by their first topic."""
    if path.startswith("/destinations/") and "food & wine" in topics:
        return "cuisine"
    return TAXONOMY.get(topics[0], "travel") if topics else "travel"


DESTINATIONS = ["Amalfi Coast", "Kyoto", "Lisbon", "Reykjavik", "Oaxaca", "Barcelona", "Bali"]
REFERRERS = ["https://www.google.com/", "https://www.instagram.com/", "", "",
             "https://news.example.com/travel", "https://www.facebook.com/"]
CAMPAIGNS = [None, None, None, {"source": "newsletter", "medium": "email", "name": "autumn-deals"},
             {"source": "google", "medium": "cpc", "name": "brand"},
             {"source": "instagram", "medium": "social", "name": "kyoto-reel"}]
AGENTS = [
    ("Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) "
     "Version/17.5 Safari/605.1.15", "1440x900"),
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/129.0.0.0 Safari/537.36", "1920x1080"),
    ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
     "Gecko) Version/17.6 Mobile/15E148 Safari/604.1", "390x844"),
    ("Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/129.0.0.0 Mobile Safari/537.36", "412x915"),
]
FIRST = ["Ana", "Ben", "Chloe", "Daniel", "Emma", "Farid", "Grace", "Hiro", "Isla", "Jonas",
         "Kara", "Liam", "Maya", "Noah", "Olivia", "Pedro", "Quinn", "Rosa", "Sam", "Tara"]
LAST = ["Silva", "Okafor", "Müller", "Tanaka", "Smith", "García", "Rossi", "Novak", "Jensen",
        "Haddad", "Kim", "Dubois"]
COUNTRIES = [("US", "Chicago"), ("US", "Austin"), ("GB", "London"), ("DE", "Berlin"),
             ("PT", "Porto"), ("JP", "Osaka"), ("CA", "Toronto"), ("NL", "Utrecht")]
TIERS = ["Bronze", "Bronze", "Silver", "Silver", "Gold", "Platinum"]

TRIP_BOOKED_PLAN = {
    "type": "object",
    "required": ["properties"],
    "properties": {"properties": {
        "type": "object",
        "required": ["trip_id", "revenue", "currency"],
        "properties": {"revenue": {"type": "number"}, "currency": {"enum": ["USD", "EUR"]}},
    }},
}
NEWSLETTER_PLAN = {
    "type": "object",
    "required": ["properties"],
    "properties": {"properties": {"type": "object", "required": ["email"]}},
}


# Where the demo site shows each seeded experience, and how much each variant moves bookings
# (so the results page and the bandit have a better arm to find).
PLACEMENTS = {"homepage-hero": ("/",), "book-button": ("/destinations/", "/deals/"),
              "cuisine-banner": ("/destinations/", "/guides/")}
LIFT = {("homepage-hero", "autumn-escape"): 1.3, ("book-button", "reserve"): 1.6,
        ("book-button", "check-dates"): 0.8}


def _experiences_on(path: str, shown: dict[str, str]) -> list[str]:
    return [key for key, places in PLACEMENTS.items() if key in shown and any(
        path == place or (place.endswith("/") and place != "/" and path.startswith(place))
        for place in places)]


def _lift(seen: dict[str, str]) -> float:
    lift = 1.0
    for key, variant in seen.items():
        lift *= LIFT.get((key, variant), 1.0)
    return lift


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Demo:
    """Visitors, customers and what they do, from one seeded random generator."""

    def __init__(self, rng: random.Random,
                 decide: Callable[[str, dict[str, Any]], dict[str, str]] | None = None) -> None:
        self.rng = rng
        # The account's running experiences, decided per page view (experience key -> variant
        # key) by the real decision API core, as the site's tag asks, with the page's taxonomy
        # as a live attribute (so the cuisine banner shows on cuisine pages).
        self.decide = decide
        self.customers = [self._customer(n) for n in range(80)]
        self.visitors = [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(600)]
        self.known: dict[str, dict[str, Any]] = {}  # visitor id -> customer, once identified

    def _customer(self, n: int) -> dict[str, Any]:
        first, last = self.rng.choice(FIRST), self.rng.choice(LAST)
        country, city = self.rng.choice(COUNTRIES)
        ascii_last = last.lower().replace("ü", "u").replace("í", "i")
        return {
            "user_id": f"u_{1001 + n}", "crm_id": f"C-{100200 + n * 7}",
            "email": f"{first.lower()}.{ascii_last}{n}@example.com",
            "first_name": first, "last_name": last, "country": country, "city": city,
            "phone": f"+1-555-{self.rng.randint(100, 999)}-{self.rng.randint(1000, 9999)}",
            "tier": self.rng.choice(TIERS),
            "created": (datetime(2023, 1, 1, tzinfo=UTC)
                        + timedelta(days=self.rng.randint(0, 650))).date().isoformat(),
        }

    # The website.

    def session(self, start: datetime) -> list[dict[str, Any]]:
        rng = self.rng
        visitor = rng.choice(self.visitors)
        customer = self.known.get(visitor)
        agent, screen = rng.choice(AGENTS)
        campaign = rng.choice(CAMPAIGNS)
        referrer = rng.choice(REFERRERS)
        context: dict[str, Any] = {
            "userAgent": agent, "locale": rng.choice(["en-US", "en-GB", "de-DE", "pt-PT"]),
            "timezone": rng.choice(["America/Chicago", "Europe/London", "Europe/Berlin"]),
            "screen": {"width": int(screen.split("x")[0]), "height": int(screen.split("x")[1])},
            "library": {"name": "strata.js", "version": "1.0.0"},
        }
        if campaign:
            context["campaign"] = campaign
        messages: list[dict[str, Any]] = []
        moment = start
        seen: dict[str, str] = {}  # experience key -> the variant the session saw

        def base(kind: str) -> dict[str, Any]:
            message: dict[str, Any] = {"type": kind, "anonymousId": visitor,
                                       "messageId": f"demo-{uuid.UUID(int=rng.getrandbits(128))}",
                                       "timestamp": _iso(moment), "context": dict(context)}
            if customer is not None:
                message["userId"] = customer["user_id"]
            return message

        for _ in range(rng.choice([1, 1, 2, 2, 3, 4, 6])):
            path, title, section, category, topics = rng.choice(PAGES[:-1])
            page = {"path": path, "url": f"https://travel.example.com{path}", "title": title,
                    "referrer": referrer, "search": ""}
            message = base("page")
            message["name"] = title
            message["properties"] = {**page, "taxonomy": taxonomy_of(path, topics), "content": {
                "section": section, "category": category, "topics": topics,
                "reading_minutes": rng.choice([2, 4, 6, 8]),
            }}
            message["context"]["page"] = page
            messages.append(message)
            shown = ({} if self.decide is None
                     else self.decide(visitor, {"taxonomy": taxonomy_of(path, topics)}))
            for key in _experiences_on(path, shown):
                if key not in seen:  # the tag sends one impression per experience and visit
                    seen[key] = shown[key]
                    viewed = base("track")
                    viewed["event"] = "Experiment Viewed"
                    viewed["properties"] = {"experiment_id": key, "variation_id": shown[key]}
                    messages.append(viewed)
            referrer = page["url"]
            moment += timedelta(seconds=rng.randint(8, 140))
        if rng.random() < 0.3:
            message = base("track")
            message["event"] = "Search Performed"
            message["properties"] = {"destination": rng.choice(DESTINATIONS),
                                     "travelers": rng.choice([1, 2, 2, 3, 4]),
                                     "nights": rng.choice([2, 3, 5, 7, 10]),
                                     "flexible_dates": rng.random() < 0.4}
            messages.append(message)
        if customer is None and rng.random() < 0.12:
            customer = self.known[visitor] = rng.choice(self.customers)
            identify = base("identify")
            identify["userId"] = customer["user_id"]
            identify["traits"] = {"email": customer["email"], "first_name": customer["first_name"],
                                  "last_name": customer["last_name"],
                                  "loyalty_tier": customer["tier"]}
            messages.append(identify)
        if rng.random() < 0.05:
            message = base("track")
            message["event"] = "Newsletter Signed Up"
            message["properties"] = {"list": "weekly-deals", "email": (customer or {}).get(
                "email", f"guest{rng.randint(100, 999)}@example.org")}
            if rng.random() < 0.15:
                del message["properties"]["email"]  # blocked by the tracking plan
            messages.append(message)
        # A trip in the cart (the seed's "cart abandoners" audience: added_to_cart in the last
        # 7 days and no purchased); most carts are left, a booking buys what is in it.
        cart = None
        if rng.random() < 0.12 or (customer is not None and rng.random() < 0.25):
            cart = {"sku": f"TRIP-{rng.choice(DESTINATIONS).upper().replace(' ', '-')}",
                    "destination": rng.choice(DESTINATIONS), "price": rng.choice([399, 649, 1290])}
            message = base("track")
            message["event"] = "added_to_cart"
            message["properties"] = dict(cart)
            messages.append(message)
            moment += timedelta(seconds=rng.randint(20, 300))
        if customer is not None and (rng.random() < 0.18 * _lift(seen)
                                     or (cart and rng.random() < 0.35)):
            nights = rng.choice([3, 4, 5, 7, 10])
            revenue = round(nights * rng.uniform(90, 310), 2)
            if cart is not None:
                message = base("track")
                message["event"] = "purchased"
                message["properties"] = {**cart, "revenue": revenue}
                messages.append(message)
            message = base("track")
            message["event"] = "Trip Booked"
            message["properties"] = {
                "trip_id": f"T-{rng.randint(100000, 999999)}",
                "destination": rng.choice(DESTINATIONS), "nights": nights,
                # an older checkout page sends the revenue as text: a plan violation
                "revenue": revenue if rng.random() > 0.1 else f"{revenue:.2f}",
                "currency": rng.choice(["USD", "USD", "EUR"]),
                "travelers": rng.choice([1, 2, 2, 4]),
            }
            messages.append(message)
        if rng.random() < 0.01:
            messages.append({"type": "track", "anonymousId": visitor,
                             "properties": {"button": "book-now"}})  # no event name: refused
        return messages

    # The CRM.

    def crm_records(self, synced_at: datetime, count: int) -> list[dict[str, Any]]:
        rng = self.rng
        records = []
        for customer in rng.sample(self.customers, count):
            # Shaped like the CRM export in the Lytics use cases: who in `origin`, what the
            # CRM answers in `response` (the demo schema maps origin.email, response.*).
            records.append({
                "origin": {"email": customer["email"], "crm_id": customer["crm_id"],
                           "user_id": customer["user_id"]},
                "response": {
                    "loyalty_tier": customer["tier"],
                    "preferred_activities": rng.sample(
                        ["Parasailing", "Snorkeling", "Hiking", "Wine tasting", "City tours",
                         "Cooking classes"], 2),
                    "lifetime_value": round(rng.uniform(0, 9000), 2),
                    "bookings_count": rng.randint(0, 14),
                },
                "first_name": customer["first_name"], "last_name": customer["last_name"],
                "phone": customer["phone"], "country": customer["country"],
                "city": customer["city"], "opted_in_email": rng.random() < 0.7,
                "customer_since": customer["created"],
                "updated_at": _iso(synced_at - timedelta(minutes=rng.randint(1, 600))),
            })
        return records


def _traffic_weight(moment: datetime) -> float:
    """Sessions per 10 minutes: quiet at night, busy in the evening, a bit more on weekends."""
    hour = moment.hour + moment.minute / 60
    daily = 0.25 + 0.75 * math.exp(-((hour - 19.5) ** 2) / 18) + 0.35 * math.exp(
        -((hour - 12.5) ** 2) / 6)
    return daily * (1.25 if moment.weekday() >= 5 else 1.0)


def _decider(account: Account) -> Callable[[str, dict[str, Any]], dict[str, str]] | None:
    """The running experiences' variant for a visitor's page view, from experiences.decide
    (which stores A/B assignments, so the impressions the tag sends are of the variant the
    visitor was given; a segmented experience's segment or base, by the live attributes);
    None when the account runs none."""
    from experiences.decide import decide
    from experiences.models import Experience

    if not Experience.objects.for_account(account).filter(status="active").exists():
        return None

    def variants(visitor: str, attributes: dict[str, Any]) -> dict[str, str]:
        answer = decide(account.pk, visitor, attributes=attributes)
        return {d.experience_key: d.variant_key for d in answer.decisions
                if d.variant_key is not None and (d.reason in ("SPLIT", "TARGETING_MATCH")
                                                  or d.detail == "no_segment")}

    return variants


class Command(BaseCommand):
    help = ("Send a few days of realistic demo events (website and CRM) into the demo account "
            "through the collection core, then aggregate them. Skipped when they exist.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--account", default="demo", help="slug of the account (demo)")
        parser.add_argument("--days", type=int, default=7)
        parser.add_argument("--sessions-per-slot", type=float, default=4.0,
                            help="website sessions per 10 minutes at the daily peak")
        parser.add_argument("--seed", type=int, default=20261123)

    def handle(self, *args: Any, account: str, days: int, sessions_per_slot: float, seed: int,
               **options: Any) -> None:
        target = Account.objects.filter(slug=account).first()
        if target is None:
            raise CommandError(f"No account {account!r}: run `manage.py seed_demo` first.")
        published = self._schema(target)
        if RawEvent.objects.for_account(target).filter(stream__in=[WEB, CRM]).exists():
            if published:  # events processed before there was a schema: profiles from them
                from profiles.processing.rebuild import start_rebuild

                start_rebuild(target)
                self.stdout.write(f"Rebuilding {target.name}'s profiles with the new schema.")
            self.stdout.write(f"Demo events already in {target.name}; nothing sent.")
            return
        web_key, crm_key = self._write_keys(target)
        self._tracking_plans(target)
        demo = Demo(random.Random(seed), decide=_decider(target))
        now = datetime.now(UTC).replace(second=0, microsecond=0)
        slot = (now - timedelta(days=days)).replace(minute=0)
        totals = {"stored": 0, "failed": 0}
        try:
            self._send(target, demo, slot, now, sessions_per_slot, web_key, crm_key, totals)
        except QuotaExceeded:
            self.stderr.write(f"{target.name} is over its monthly quota; stopped sending.")
        result = aggregate_streams(settle_seconds=0)
        self.stdout.write(self.style.SUCCESS(
            f"Sent {totals['stored']:,} demo events to {target.name} ({WEB}, {CRM}); "
            f"{totals['failed']:,} refused as failed events; aggregated {result.events:,}."
        ))

    def _send(self, target: Account, demo: Demo, slot: datetime, now: datetime,
              sessions_per_slot: float, web_key: WriteKey, crm_key: WriteKey,
              totals: dict[str, int]) -> None:
        """Ten minutes of traffic at a time, oldest first, each slot received at its end."""
        while slot < now - SLOT:
            received = slot + SLOT - timedelta(seconds=demo.rng.randint(1, 90))
            sessions = demo.rng.random() * 2 * sessions_per_slot * _traffic_weight(slot)
            messages: list[dict[str, Any]] = []
            for _ in range(round(sessions)):
                start = slot + timedelta(seconds=demo.rng.randint(0, 300))
                messages.extend(demo.session(start))
            if messages:
                body = {"batch": messages, "sentAt": _iso(received - timedelta(seconds=1))}
                events, failures = segment.parse_batch(body, received)
                self._accept(target, WEB, events, failures, "segment", received, web_key,
                             totals)
            if slot.hour == 2 and slot.minute == 0:  # the nightly CRM sync
                synced = slot + timedelta(minutes=4)
                records = demo.crm_records(synced, demo.rng.randint(25, 60))
                events, failures = lytics.parse_records(records, synced,
                                                        timestamp_field="updated_at")
                self._accept(target, CRM, events, failures, "json", synced, crm_key, totals)
            slot += SLOT

    def _accept(self, account: Account, stream: str, events: list, failures: list, source: str,
                received: datetime, key: WriteKey, totals: dict[str, int]) -> None:
        outcome = accept(account, stream, events, failures, source=source, received_at=received,
                         write_key_id=key.pk, key_prefix=key.prefix, remote_addr="203.0.113.7")
        totals["stored"] += outcome.stored
        totals["failed"] += outcome.failed

    def _schema(self, account: Account) -> bool:
        """The Lytics use-case schema (email, the `_uid` cookie, taxonomy...), installed and
        published before any event is sent, so the running processor (``serve`` starts
        ``process_events --loop``) builds profiles from them. True when a version was
        published now (a later run finds it live and publishes nothing)."""
        live = live_version(account)
        version = install_lytics_schema(account)
        if version is not None and (live is None or version.pk != live.pk):
            self.stdout.write(f"Published the Lytics use-case schema (version {version.number}) "
                              f"in {account.name}.")
            return True
        return False

    def _write_keys(self, account: Account) -> tuple[WriteKey, WriteKey]:
        actor = Actor(account=account, role_codes=frozenset({"admin"}), is_superuser=True)
        keys = []
        for name, stream in (("Travel website", WEB), ("CRM nightly sync", CRM)):
            key = WriteKey.objects.for_account(account).filter(name=name, stream=stream).first()
            if key is None:
                key = access.create_write_key(account=account, actor=actor, name=name,
                                              stream=stream).obj
            keys.append(key)
        return keys[0], keys[1]

    def _tracking_plans(self, account: Account) -> None:
        from profiles.collection import plans

        for event, schema, mode in (("Trip Booked", TRIP_BOOKED_PLAN, TrackingPlan.Mode.ALLOW),
                                    ("Newsletter Signed Up", NEWSLETTER_PLAN,
                                     TrackingPlan.Mode.BLOCK)):
            if not TrackingPlan.objects.for_account(account).filter(stream=WEB,
                                                                   event=event).exists():
                plans.create_plan(account, stream=WEB, event=event, schema=schema, mode=mode)
