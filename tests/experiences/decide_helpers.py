"""Builders for the decision tests: experiences as rows (as experiences.lifecycle leaves them
once active), audiences, known visitors (a profile with a ``_uid`` identifier), memberships
and consent."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from django.db.models import F

from audiences.models import Audience, AudienceMembership
from cdp_site.models import Account
from experiences import config
from experiences.models import BanditWeights, Experience, Phase, Variant
from profiles.models import Identifier, Profile, ProfileConsent

NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def make_audience(account: Account, slug: str, *, api_accessible: bool = True) -> Audience:
    return Audience.objects.create(
        account=account, slug=slug, name=slug.title(), api_accessible=api_accessible,
        rule={"field": "taxonomy", "op": "=", "value": slug}, status=Audience.Status.READY)


def make_experience(
    account: Account,
    key: str,
    variants: Sequence[str] = ("control", "treatment"),
    *,
    weights: Sequence[float] | None = None,
    type: str = Experience.Type.AB,
    distribution: str = Experience.Distribution.EQUAL,
    status: str = Experience.Status.ACTIVE,
    value_type: str = Experience.ValueType.STRING,
    values: Sequence[Any] | None = None,
    traffic_allocation: float = 1.0,
    target_audiences: Iterable[Audience] = (),
    segments: Mapping[str, tuple[Audience, int]] | None = None,
    uid: str | None = None,
) -> Experience:
    """An experience in ``status`` with phase 1 started: the first variant is the base."""
    targets = list(target_audiences)
    exp = Experience.objects.create(
        account=account, key=key, uid=uid or f"e{Experience.objects.count() + 1}", name=key,
        type=type, distribution=distribution, status=status, value_type=value_type,
        traffic_allocation=traffic_allocation, phase=1,
        target=Experience.Target.AUDIENCES if targets else Experience.Target.EVERYONE)
    exp.target_audiences.set(targets)
    shares = list(weights) if weights is not None else [1 / len(variants)] * len(variants)
    for position, name in enumerate(variants):
        audience, priority = (segments or {}).get(name, (None, 0))
        Variant.objects.create(
            account=account, experience=exp, key=name, uid=str(position), name=name,
            value=values[position] if values is not None else name,
            content={"headline": f"{name} headline"}, is_base=position == 0,
            weight=shares[position], audience=audience, priority=priority, position=position)
    Phase.objects.create(account=account, experience=exp, number=1,
                         weights=dict(zip(variants, shares, strict=True)),
                         traffic_allocation=traffic_allocation, variant_keys=list(variants))
    config.invalidate()
    return exp


def changed(exp: Experience, **fields: Any) -> Experience:
    """Save changes to an experience the way the lifecycle does (version bumped)."""
    Experience.objects.filter(pk=exp.pk).update(version=F("version") + 1, **fields)
    config.invalidate()
    exp.refresh_from_db()
    return exp


def new_phase(exp: Experience, weights: Mapping[str, float]) -> None:
    """A change of split: phase n+1 with these weights."""
    number = exp.phase + 1
    Phase.objects.filter(experience=exp, number=exp.phase).update(ended_at=NOW)
    Phase.objects.create(account=exp.account, experience=exp, number=number,
                         weights=dict(weights), variant_keys=list(weights))
    changed(exp, phase=number)


def reweigh(exp: Experience, weights: Mapping[str, float]) -> None:
    """A bandit reweighting of the current phase."""
    BanditWeights.objects.create(account=exp.account, experience=exp, phase=exp.phase,
                                 weights=dict(weights))
    config.invalidate()


def make_visitor(account: Account, uid: str, *, audiences: Iterable[Audience] = (),
                 email: str | None = None) -> Profile:
    """A known visitor: a profile holding the ``_uid`` identifier (and an email)."""
    profile = Profile.objects.create(account=account, first_seen=NOW, last_seen=NOW)
    Identifier.objects.create(account=account, field="_uid", value=uid, profile=profile,
                              first_seen=NOW, last_seen=NOW)
    if email:
        Identifier.objects.create(account=account, field="email", value=email,
                                  profile=profile, first_seen=NOW, last_seen=NOW)
    for audience in audiences:
        AudienceMembership.objects.create(account=account, audience=audience, profile=profile)
    return profile


def set_consent(profile: Profile, purpose: str, granted: bool) -> None:
    ProfileConsent.objects.update_or_create(
        account=profile.account, profile=profile, purpose=purpose,
        defaults={"granted": granted, "at": NOW})


def uid_in(exp_seed: str, weights: Sequence[float], index: int, prefix: str = "v",
           coverage: float = 1.0) -> str:
    """The first uid ``<prefix><n>`` GrowthBook's hash puts in variant ``index``."""
    from experiences.bucketing import assign

    for n in range(10_000):
        uid = f"{prefix}{n}"
        if assign(exp_seed, uid, weights, coverage) == index:
            return uid
    raise AssertionError("no uid found")
