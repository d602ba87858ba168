"""Builders for profile API and page tests: people made through the real collection paths and
the processing pipeline (the issue's "Done when" journey), and a role that may view profiles
without seeing PII (none of the eleven roles is one: ROLES.md gives profile view and PII view
to the same roles, but the masking must hold for any role that has one without the other)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.test import Client

from cdp_site.models import Account, Permission, Role
from profiles.models import Field, Profile
from profiles.processing.identity import find_profile
from profiles.schema.drafts import save_field, save_mapping
from profiles.schema.lytics import install_lytics_schema
from profiles.schema.versions import publish
from tests.profiles.conftest import basic_auth, jstag_query, make_write_key
from tests.profiles.processing import run

EMAIL = "mason@example.com"
COOKIE = "visitor-1"
PHONE = "+1 555 123 4539"
FIRST_NAME = "Mason"
NO_PII_ROLE = "profile_reader"


def install_schema(account: Account) -> None:
    """The Lytics use-case schema, plus two PII fields from the CRM: phone and first_name."""
    install_lytics_schema(account)
    if Field.objects.for_account(account).filter(name="phone").exists():
        return
    phone = save_field(account, name="phone", type="string", merge_operator="latest",
                       is_pii=True, description="Phone number from the CRM.")
    first = save_field(account, name="first_name", type="string",
                       merge_operator="latest", is_pii=True)
    save_mapping(account, field=phone, stream="crm_users", expression="response.phone")
    save_mapping(account, field=first, stream="crm_users",
                 expression="response.first_name")
    publish(account, note="contact fields")


@dataclass
class Journey:
    """One visitor's way through the Lytics use cases, step by step."""

    account: Account
    cookie: str = COOKIE
    email: str = EMAIL
    secret: str = ""
    client: Client | None = None

    def __post_init__(self) -> None:
        install_schema(self.account)
        _key, self.secret = make_write_key(self.account, stream="default")
        self.client = Client()
        self.client.cookies["seerid"] = self.cookie

    def page_view(self, **data: Any) -> None:
        """A tag page view (``taxonomy=cuisine`` by default) on the visitor's cookie."""
        data = {"_e": "pv", "taxonomy": "cuisine", **data}
        response = self.client.get(f"/c/{self.account.aid}?{jstag_query(data)}")
        assert response.status_code == 200, response.content
        run(self.account)

    def identify(self) -> None:
        """A Segment identify with the email, on the same cookie."""
        response = self.client.post(
            "/v1/identify", data={"anonymousId": self.cookie, "traits": {"email": self.email}},
            content_type="application/json", HTTP_AUTHORIZATION=basic_auth(self.secret))
        assert response.status_code == 200, response.content
        run(self.account)

    def crm_record(self, **response: Any) -> None:
        """A CRM JSON record joining by email."""
        body = {"origin.email": self.email, "response.loyalty_tier": "gold",
                "response.preferred_activities": ["hiking", "cooking"],
                "response.phone": PHONE, "response.first_name": FIRST_NAME}
        body.update({f"response.{k}": v for k, v in response.items()})
        reply = self.client.post("/collect/json/crm_users", data=body,
                                 content_type="application/json", HTTP_X_API_KEY=self.secret)
        assert reply.status_code == 200, reply.content
        run(self.account)

    def profile(self) -> Profile:
        found = find_profile(self.account, "email", self.email)
        assert found is not None
        return found


def known_person(account: Account, **kwargs: Any) -> Journey:
    """The whole journey: page view, identify, CRM record."""
    journey = Journey(account, **kwargs)
    journey.page_view()
    journey.identify()
    journey.crm_record()
    return journey


def role_without_pii() -> str:
    """A role that may search and view profiles but not see PII (its code)."""
    role, created = Role.objects.get_or_create(
        code=NO_PII_ROLE, defaults={"name": "Profile Reader", "abbreviation": "PrR"})
    if created:
        role.permissions.set(Permission.objects.filter(code="profiles.view"))
    return role.code
