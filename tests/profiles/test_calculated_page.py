"""The profile page shows calculated attribute values (PII properties masked) and consent."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from profiles.schema.drafts import save_field, save_mapping
from profiles.schema.versions import publish
from tests.conftest import make_user
from tests.profiles.calculated_helpers import DAY, define, now, page, run, send_at, shop_schema
from tests.profiles.calculated_helpers import track as track_event
from tests.profiles.people import role_without_pii
from tests.profiles.processing import profile_with

pytestmark = pytest.mark.django_db

ANN = {"email": "ann@example.com"}


def signed_in(account, *roles):
    client = Client()
    client.force_login(make_user("-".join(roles) or "nobody", account, roles=roles))
    return client


def cell(html: str, testid: str) -> str:
    start = html.index(f'data-testid="{testid}"')
    inner = html[html.index(">", start) + 1:html.index("</td>", start)]
    return re.sub(r"<[^>]+>", "", inner).strip()


def test_profile_page_shows_attributes_and_consent(account):
    shop_schema(account)
    field = save_field(account, name="coupon_code", type="string",
                       merge_operator="latest", is_pii=True)
    save_mapping(account, field=field, stream="web", expression="properties.coupon_code")
    publish(account)
    define(account, name="1_week_page_views", aggregate="count", event="page", window_days=7)
    define(account, name="favourite_coupon", aggregate="most_frequent", event="order",
           property="coupon_code", window_days=7)
    define(account, name="last_login", aggregate="last", event="login", window_days=7)
    message = page(ANN)
    message["context"] = {"consent": {"categoryPreferences": {"personalization": True,
                                                              "ads": False}}}
    send_at(account, now() - DAY, message, page(ANN),
            track_event("order", ANN, coupon_code="SPRING-ANN"))
    run(account)
    pid = profile_with(account, "ann@example.com").pk

    html = signed_in(account, "data_manager").get(f"/profiles/{pid}/").content.decode()
    assert cell(html, "attribute-1_week_page_views").strip() == "2"
    assert "SPRING-ANN" in cell(html, "attribute-favourite_coupon")
    assert "no events in the window" in cell(html, "attribute-last_login")
    assert 'data-purpose="personalization"' in html and "withheld" in html

    html = signed_in(account, role_without_pii()).get(f"/profiles/{pid}/").content.decode()
    assert "SPRING-ANN" not in html
    assert "masked" in html[html.index('data-testid="attribute-favourite_coupon"') - 80:]
    assert cell(html, "attribute-1_week_page_views").strip() == "2"


def test_profile_page_without_attributes_or_consent(account):
    shop_schema(account)
    send_at(account, now(), page(ANN))
    run(account)
    pid = profile_with(account, "ann@example.com").pk
    html = signed_in(account, "data_manager").get(f"/profiles/{pid}/").content.decode()
    assert "No calculated attributes" in html and "No consent recorded" in html
