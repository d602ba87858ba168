"""Builders for the connector tests: profiles with identifiers and consents, an audience with
members and a change log (written as rows, as audiences.membership writes them), a receiver
that records verified Standard Webhooks deliveries."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from standardwebhooks.webhooks import Webhook
from werkzeug import Request, Response

from audiences.models import Audience, AudienceMembership, MembershipChange
from cdp_site.models import Account
from connectors.models import ConnectorSettings
from profiles.models import Field, Identifier, Profile, ProfileConsent

NOW = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)


def allow_local(account: Account) -> None:
    ConnectorSettings.objects.update_or_create(
        account=account, defaults={"outbound_allowlist": ["localhost", "127.0.0.1/32", "::1"]})


def make_fields(account: Account) -> None:
    Field.objects.create(account=account, name="email", is_identifier=True, identifier_rank=1,
                         is_pii=True)
    Field.objects.create(account=account, name="phone", is_identifier=True, identifier_rank=2,
                         is_pii=True)
    Field.objects.create(account=account, name="loyalty_tier")


def make_person(account: Account, n: int, *, consents: Iterable[str] = ("advertising",),
                phone: str | None = None, **values: Any) -> Profile:
    profile = Profile.objects.create(account=account, first_seen=NOW, last_seen=NOW,
                                     field_values={"email": f"p{n}@example.com", **values})
    Identifier.objects.create(account=account, profile=profile, field="email",
                              value=f"P{n}@Example.com ", first_seen=NOW, last_seen=NOW)
    if phone:
        Identifier.objects.create(account=account, profile=profile, field="phone", value=phone,
                                  first_seen=NOW, last_seen=NOW)
    for purpose in consents:
        set_consent(profile, purpose, True)
    return profile


def set_consent(profile: Profile, purpose: str, granted: bool) -> None:
    ProfileConsent.objects.update_or_create(
        profile=profile, purpose=purpose,
        defaults={"account_id": profile.account_id, "granted": granted, "at": NOW})


def make_audience(account: Account, slug: str = "gold") -> Audience:
    return Audience.objects.create(account=account, slug=slug, name=slug.title(),
                                   rule={"field": "loyalty_tier", "op": "=", "value": "Gold"})


def enter(audience: Audience, profiles: Iterable[Profile]) -> None:
    for profile in profiles:
        AudienceMembership.objects.create(account_id=audience.account_id, audience=audience,
                                          profile=profile)
        MembershipChange.objects.create(account_id=audience.account_id, audience=audience,
                                        profile_id=profile.pk, kind="entry", cause="realtime")


def leave(audience: Audience, profile: Profile) -> None:
    AudienceMembership.objects.filter(audience=audience, profile=profile).delete()
    MembershipChange.objects.create(account_id=audience.account_id, audience=audience,
                                    profile_id=profile.pk, kind="exit", cause="realtime")


@dataclass
class Receiver:
    """Records what a pytest-httpserver endpoint got, verified with ``standardwebhooks``."""

    secret: str
    messages: list[dict[str, Any]] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def handler(self, request: Request) -> Response:
        payload = Webhook(self.secret).verify(request.get_data(), dict(request.headers))
        with self.lock:
            self.ids.append(request.headers["webhook-id"])
            self.messages.append(payload)
        return Response("{}", status=200, content_type="application/json")

    def unique(self) -> list[dict[str, Any]]:
        """One message per webhook-id (what a deduplicating receiver keeps)."""
        seen: dict[str, dict[str, Any]] = {}
        for message_id, message in zip(self.ids, self.messages, strict=True):
            seen.setdefault(message_id, message)
        return list(seen.values())

    def changes(self, action: str) -> list[dict[str, Any]]:
        return [c for m in self.unique() for c in m.get("changes", []) if c["action"] == action]
