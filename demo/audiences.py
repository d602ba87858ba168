"""The demo account's audiences (the issue's "Done when"): content taxonomy for anonymous
visitors, CRM loyalty tier and activities, and cart abandoners (added to cart in the last 7
days, excluding those who purchased). Rules are text, as a marketer would write them."""

from __future__ import annotations

from typing import TYPE_CHECKING

from audiences import editing
from audiences.filterql import parse_filter
from audiences.models import Audience

if TYPE_CHECKING:
    from cdp_site.models import Account

# slug, name, API accessible, rule text, description
SEED_AUDIENCES: list[tuple[str, str, bool, str, str]] = [
    ("cuisine", "Cuisine readers", True, 'FILTER taxonomy = "cuisine"',
     "Visitors (anonymous too) whose latest page is about cuisine."),
    ("gold_members", "Gold members", True, 'FILTER loyalty_tier = "Gold"',
     "Loyalty tier Gold, from the CRM."),
    ("parasailing_fans", "Parasailing fans", True,
     'FILTER preferred_activities CONTAINS "Parasailing"',
     "The CRM says they like parasailing."),
    ("added_to_cart_7d", "Added to cart (7 days)", False,
     "FILTER EVENT added_to_cart WITHIN 7", "An added_to_cart event in the last 7 days."),
    ("purchased_7d", "Purchased (7 days)", False, "FILTER EVENT purchased WITHIN 7",
     "A purchased event in the last 7 days."),
    ("cart_abandoners_7d", "Cart abandoners (7 days)", True,
     "FILTER AND(INCLUDE added_to_cart_7d, NOT INCLUDE purchased_7d)",
     "Added to cart in the last 7 days but did not purchase."),
]


def seed_audiences(account: Account, *, compute: bool = True) -> list[Audience]:
    """Create the seed audiences the account lacks, by slug or by rule (idempotent, and an
    audience renamed since is not made again); the account's live schema must have taxonomy,
    loyalty_tier and preferred_activities (the Lytics use-case schema)."""
    made = []
    for slug, name, accessible, text, description in SEED_AUDIENCES:
        rule = parse_filter(text)
        found = (Audience.objects.filter(account=account, slug=slug).first()
                 or Audience.objects.filter(account=account, rule=rule).order_by("pk").first())
        if found is None:
            found = editing.create_audience(account, None, name=name, slug=slug, text=text,
                                            description=description,
                                            api_accessible=accessible, compute=compute)
        made.append(found)
    return made
