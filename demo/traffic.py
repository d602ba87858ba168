"""A week of realistic demo traffic, so the stream explorer, profiles, audiences and
experiences have something to show (``manage.py seed_demo_events`` runs it).

``Demo`` generates, from one seeded random generator, website traffic (page views with the
content's taxonomy and the impressions of the experiences they show, searches, trips added to
the cart and purchased, bookings, newsletter sign-ups, identifies with emails) for the ``web``
stream as Segment-spec batches, and a nightly CRM sync (customer records) for ``crm_users`` as
JSON records: the same seed gives the same traffic. ``send_traffic`` sends it through the real
collection core: the paths' own parsers (``profiles.collection.segment``,
``profiles.collection.lytics``) and ``profiles.collection.store.accept`` (tracking plans,
dedupe, failed events), with received times spread over the past days; then the aggregator
runs once. ``publish_schema`` installs and publishes the Lytics use-case schema first
(``profiles.schema.drafts.install_lytics_schema``), so the processor ``make run`` starts
builds profiles from these events (people identified on the website are found by email on
/profiles/).
"""

from __future__ import annotations

import math
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from cdp_site import access
from cdp_site.models import Account, WriteKey
from cdp_site.tenancy import Actor
from experiences.decide import decide
from experiences.models import Experience
from profiles.collection import lytics, plans, segment
from profiles.collection.messages import QuotaExceeded
from profiles.collection.store import accept
from profiles.explorer.aggregate import aggregate_streams
from profiles.models import RawEvent, SchemaVersion, TrackingPlan
from profiles.schema.lytics import install_lytics_schema
from profiles.schema.versions import live_version

__all__ = ["CRM", "WEB", "Demo", "SentTraffic", "experience_decider", "has_demo_events",
           "publish_schema", "send_traffic"]

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


@dataclass
class _Visit:
    """One website session as it goes: who, their browser's context, the time of the next
    message, the page they came from, what they were sent and the variants they saw."""

    rng: random.Random
    visitor: str
    customer: dict[str, Any] | None
    context: dict[str, Any]
    moment: datetime
    referrer: str
    messages: list[dict[str, Any]] = field(default_factory=list)
    seen: dict[str, str] = field(default_factory=dict)  # experience key -> variant

    def message(self, kind: str) -> dict[str, Any]:
        """A new message of the visit, at its current moment (with the user id once the
        visitor is known)."""
        message: dict[str, Any] = {"type": kind, "anonymousId": self.visitor,
                                   "messageId": f"demo-{uuid.UUID(int=self.rng.getrandbits(128))}",
                                   "timestamp": _iso(self.moment), "context": dict(self.context)}
        if self.customer is not None:
            message["userId"] = self.customer["user_id"]
        return message


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
        """One visit to the website, as the site's tag sends it: page views (with the
        impressions of the experiences they show), then perhaps a search, an identify, a
        newsletter sign-up, a trip in the cart, a booking, and now and then a message the
        collection refuses."""
        visit = self._visit(start)
        for _ in range(self.rng.choice([1, 1, 2, 2, 3, 4, 6])):
            self._page_view(visit)
        self._search(visit)
        self._identify(visit)
        self._newsletter(visit)
        cart = self._cart(visit)
        self._booking(visit, cart)
        self._refused(visit)
        return visit.messages

    def _visit(self, start: datetime) -> _Visit:
        """Who visits (a customer once identified), from which browser and campaign."""
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
        return _Visit(rng, visitor, customer, context, start, referrer)

    def _page_view(self, visit: _Visit) -> None:
        """A page, and an impression of each experience the page shows for the first time
        in the visit (the variant the decision API gives the visitor)."""
        rng = self.rng
        path, title, section, category, topics = rng.choice(PAGES[:-1])
        page = {"path": path, "url": f"https://travel.example.com{path}", "title": title,
                "referrer": visit.referrer, "search": ""}
        message = visit.message("page")
        message["name"] = title
        message["properties"] = {**page, "taxonomy": taxonomy_of(path, topics), "content": {
            "section": section, "category": category, "topics": topics,
            "reading_minutes": rng.choice([2, 4, 6, 8]),
        }}
        message["context"]["page"] = page
        visit.messages.append(message)
        shown = ({} if self.decide is None
                 else self.decide(visit.visitor, {"taxonomy": taxonomy_of(path, topics)}))
        for key in _experiences_on(path, shown):
            if key not in visit.seen:  # the tag sends one impression per experience and visit
                visit.seen[key] = shown[key]
                viewed = visit.message("track")
                viewed["event"] = "Experiment Viewed"
                viewed["properties"] = {"experiment_id": key, "variation_id": shown[key]}
                visit.messages.append(viewed)
        visit.referrer = page["url"]
        visit.moment += timedelta(seconds=rng.randint(8, 140))

    def _search(self, visit: _Visit) -> None:
        rng = self.rng
        if rng.random() < 0.3:
            message = visit.message("track")
            message["event"] = "Search Performed"
            message["properties"] = {"destination": rng.choice(DESTINATIONS),
                                     "travelers": rng.choice([1, 2, 2, 3, 4]),
                                     "nights": rng.choice([2, 3, 5, 7, 10]),
                                     "flexible_dates": rng.random() < 0.4}
            visit.messages.append(message)

    def _identify(self, visit: _Visit) -> None:
        """An anonymous visitor now and then logs in as a customer (for good: later visits
        carry the user id)."""
        rng = self.rng
        if visit.customer is None and rng.random() < 0.12:
            customer = visit.customer = self.known[visit.visitor] = rng.choice(self.customers)
            identify = visit.message("identify")
            identify["userId"] = customer["user_id"]
            identify["traits"] = {"email": customer["email"], "first_name": customer["first_name"],
                                  "last_name": customer["last_name"],
                                  "loyalty_tier": customer["tier"]}
            visit.messages.append(identify)

    def _newsletter(self, visit: _Visit) -> None:
        rng = self.rng
        if rng.random() < 0.05:
            message = visit.message("track")
            message["event"] = "Newsletter Signed Up"
            message["properties"] = {"list": "weekly-deals", "email": (visit.customer or {}).get(
                "email", f"guest{rng.randint(100, 999)}@example.org")}
            if rng.random() < 0.15:
                del message["properties"]["email"]  # blocked by the tracking plan
            visit.messages.append(message)

    def _cart(self, visit: _Visit) -> dict[str, Any] | None:
        """A trip in the cart (the seed's "cart abandoners" audience: added_to_cart in the last
        7 days and no purchased); most carts are left, a booking buys what is in it."""
        rng = self.rng
        cart = None
        if rng.random() < 0.12 or (visit.customer is not None and rng.random() < 0.25):
            cart = {"sku": f"TRIP-{rng.choice(DESTINATIONS).upper().replace(' ', '-')}",
                    "destination": rng.choice(DESTINATIONS), "price": rng.choice([399, 649, 1290])}
            message = visit.message("track")
            message["event"] = "added_to_cart"
            message["properties"] = dict(cart)
            visit.messages.append(message)
            visit.moment += timedelta(seconds=rng.randint(20, 300))
        return cart

    def _booking(self, visit: _Visit, cart: dict[str, Any] | None) -> None:
        """A customer books a trip, more often after seeing a better variant (``LIFT``) or with
        a trip in the cart (then purchased too)."""
        rng = self.rng
        if visit.customer is not None and (rng.random() < 0.18 * _lift(visit.seen)
                                           or (cart and rng.random() < 0.35)):
            nights = rng.choice([3, 4, 5, 7, 10])
            revenue = round(nights * rng.uniform(90, 310), 2)
            if cart is not None:
                message = visit.message("track")
                message["event"] = "purchased"
                message["properties"] = {**cart, "revenue": revenue}
                visit.messages.append(message)
            message = visit.message("track")
            message["event"] = "Trip Booked"
            message["properties"] = {
                "trip_id": f"T-{rng.randint(100000, 999999)}",
                "destination": rng.choice(DESTINATIONS), "nights": nights,
                # an older checkout page sends the revenue as text: a plan violation
                "revenue": revenue if rng.random() > 0.1 else f"{revenue:.2f}",
                "currency": rng.choice(["USD", "USD", "EUR"]),
                "travelers": rng.choice([1, 2, 2, 4]),
            }
            visit.messages.append(message)

    def _refused(self, visit: _Visit) -> None:
        if self.rng.random() < 0.01:
            visit.messages.append({"type": "track", "anonymousId": visit.visitor,
                                   "properties": {"button": "book-now"}})  # no event name: refused

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


def experience_decider(account: Account
                       ) -> Callable[[str, dict[str, Any]], dict[str, str]] | None:
    """The running experiences' variant for a visitor's page view, from experiences.decide
    (which stores A/B assignments, so the impressions the tag sends are of the variant the
    visitor was given; a segmented experience's segment or base, by the live attributes);
    None when the account runs none."""
    if not Experience.objects.for_account(account).filter(status="active").exists():
        return None

    def variants(visitor: str, attributes: dict[str, Any]) -> dict[str, str]:
        answer = decide(account.pk, visitor, attributes=attributes)
        return {d.experience_key: d.variant_key for d in answer.decisions
                if d.variant_key is not None and (d.reason in ("SPLIT", "TARGETING_MATCH")
                                                  or d.detail == "no_segment")}

    return variants


# --------------------------------------------------------------------------- sending


@dataclass
class SentTraffic:
    """What ``send_traffic`` did: events stored, refused as failed events, and aggregated;
    ``over_quota`` when the account's monthly quota stopped it."""

    stored: int = 0
    failed: int = 0
    aggregated: int = 0
    over_quota: bool = False


def publish_schema(account: Account) -> SchemaVersion | None:
    """The Lytics use-case schema (email, the `_uid` cookie, taxonomy...), installed and
    published before any event is sent, so the running processor (``serve`` starts
    ``process_events --loop``) builds profiles from them. The version published now (None
    when a later run finds it live and publishes nothing)."""
    live = live_version(account)
    version = install_lytics_schema(account)
    if version is not None and (live is None or version.pk != live.pk):
        return version
    return None


def has_demo_events(account: Account) -> bool:
    """Whether the demo streams already hold events (then nothing is sent again)."""
    return RawEvent.objects.for_account(account).filter(stream__in=[WEB, CRM]).exists()


def send_traffic(account: Account, *, days: int, sessions_per_slot: float, seed: int
                 ) -> SentTraffic:
    """``days`` of website traffic and nightly CRM syncs up to now, from ``Demo`` seeded with
    ``seed``, through the collection core with the demo's write keys and tracking plans;
    then the aggregator runs once."""
    web_key, crm_key = _write_keys(account)
    _tracking_plans(account)
    demo = Demo(random.Random(seed), decide=experience_decider(account))
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    slot = (now - timedelta(days=days)).replace(minute=0)
    sent = SentTraffic()
    try:
        _send(account, demo, slot, now, sessions_per_slot, web_key, crm_key, sent)
    except QuotaExceeded:
        sent.over_quota = True
    sent.aggregated = aggregate_streams(settle_seconds=0).events
    return sent


def _send(account: Account, demo: Demo, slot: datetime, now: datetime,
          sessions_per_slot: float, web_key: WriteKey, crm_key: WriteKey,
          sent: SentTraffic) -> None:
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
            _accept(account, WEB, events, failures, "segment", received, web_key, sent)
        if slot.hour == 2 and slot.minute == 0:  # the nightly CRM sync
            synced = slot + timedelta(minutes=4)
            records = demo.crm_records(synced, demo.rng.randint(25, 60))
            events, failures = lytics.parse_records(records, synced,
                                                    timestamp_field="updated_at")
            _accept(account, CRM, events, failures, "json", synced, crm_key, sent)
        slot += SLOT


def _accept(account: Account, stream: str, events: list, failures: list, source: str,
            received: datetime, key: WriteKey, sent: SentTraffic) -> None:
    outcome = accept(account, stream, events, failures, source=source, received_at=received,
                     write_key_id=key.pk, key_prefix=key.prefix, remote_addr="203.0.113.7")
    sent.stored += outcome.stored
    sent.failed += outcome.failed


def _write_keys(account: Account) -> tuple[WriteKey, WriteKey]:
    actor = Actor(account=account, role_codes=frozenset({"admin"}), is_superuser=True)
    keys = []
    for name, stream in (("Travel website", WEB), ("CRM nightly sync", CRM)):
        key = WriteKey.objects.for_account(account).filter(name=name, stream=stream).first()
        if key is None:
            key = access.create_write_key(account=account, actor=actor, name=name,
                                          stream=stream).obj
        keys.append(key)
    return keys[0], keys[1]


def _tracking_plans(account: Account) -> None:
    for event, schema, mode in (("Trip Booked", TRIP_BOOKED_PLAN, TrackingPlan.Mode.ALLOW),
                                ("Newsletter Signed Up", NEWSLETTER_PLAN,
                                 TrackingPlan.Mode.BLOCK)):
        if not TrackingPlan.objects.for_account(account).filter(stream=WEB,
                                                               event=event).exists():
            plans.create_plan(account, stream=WEB, event=event, schema=schema, mode=mode)
