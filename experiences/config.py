"""The live configuration of an account's experiences, as the decision paths read it.

``active_config(account_id)`` answers an immutable snapshot (``AccountConfig``) of every
experience a site may ask about: its variants, the current split (the phase's weights, or the
latest bandit weights), traffic allocation, hash seed and version, target audiences, segmented
variants' audiences by priority, and goals. The decision API reads it on every request, so it is
cached in process:

- within ``STRATA_EXPERIENCE_CONFIG_TTL`` seconds (default 1 s) of the last check a read costs
  no query at all;
- after that, one cheap query (``_fingerprint``: aggregates over the account's experiences,
  bandit weights and audiences) tells whether anything changed; only then is the snapshot
  rebuilt (a handful of queries);
- ``experiences.lifecycle`` calls ``invalidate`` on every change (now and on commit), so this
  process sees its own changes at once.

Staleness bound: another process's change is seen within the TTL (1 s by default). Writes that
bypass the lifecycle are still seen if they bump ``Experience.version``, add ``BanditWeights``,
or change an audience's slug, API accessibility or ``updated_at``.

JSON values (``value``, ``content``, ``where``) are frozen: dicts are ``FrozenDict`` (a dict
that refuses changes, so ``json``/``orjson`` still encode it) and lists are tuples; ``thaw``
gives back plain, mutable copies.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, NoReturn

from django.conf import settings
from django.db import connection

from experiences.models import (
    BanditWeights,
    Experience,
    ExperienceGoal,
    Phase,
    Variant,
)

DEFAULT_TTL = 1.0

# What an experience serves, by status (and type): ``split`` buckets visitors by the weights,
# ``segments`` picks the first segment whose audience the visitor is in (the base otherwise),
# ``base``/``winner`` serve that one variant to everyone.
SERVE_SPLIT = "split"
SERVE_SEGMENTS = "segments"
SERVE_BASE = "base"
SERVE_WINNER = "winner"


# --------------------------------------------------------------------------- frozen JSON


class FrozenDict(dict):
    """A dict that refuses changes (a JSON object in a shared snapshot)."""

    __slots__ = ()

    def _refuse(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise TypeError("configuration snapshots are immutable; thaw() a copy to change it")

    __setitem__ = __delitem__ = __ior__ = _refuse
    clear = pop = popitem = setdefault = update = _refuse

    def __reduce__(self) -> tuple[Any, ...]:  # copy, deepcopy and pickle rebuild it whole
        return (FrozenDict, (dict(self),))

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(tuple(sorted(self.items(), key=lambda item: item[0])))


def freeze(value: Any) -> Any:
    """JSON with dicts frozen and lists as tuples."""
    if isinstance(value, dict):
        return FrozenDict({key: freeze(inner) for key, inner in value.items()})
    if isinstance(value, list | tuple):
        return tuple(freeze(inner) for inner in value)
    return value


def thaw(value: Any) -> Any:
    """A plain, mutable copy of frozen JSON."""
    if isinstance(value, dict):
        return {key: thaw(inner) for key, inner in value.items()}
    if isinstance(value, tuple | list):
        return [thaw(inner) for inner in value]
    return value


# --------------------------------------------------------------------------- the snapshot


@dataclass(frozen=True, slots=True)
class VariantConfig:
    id: int
    key: str
    uid: str  # short uid within the experience: "0", "1", …
    name: str
    value: Any  # a str for string experiences, frozen JSON for JSON ones
    content: Any  # frozen JSON
    is_base: bool
    weight: float  # current share of the split (0 for a variant outside it)
    audience: str | None  # segmented: the audience slug that selects this variant
    priority: int  # segmented: lower first


@dataclass(frozen=True, slots=True)
class GoalConfig:
    id: int
    key: str
    event: str
    where: Any  # frozen: the audience rule's ``where`` shape
    stream: str  # "" for any stream
    primary: bool


@dataclass(frozen=True, slots=True)
class ExperienceConfig:
    id: int
    key: str
    uid: str
    name: str
    type: str  # "ab" | "segmented"
    distribution: str  # "equal" | "custom" | "bandit"
    status: str  # "active" | "paused" | "completed"
    value_type: str  # "string" | "json"
    serve: str  # SERVE_SPLIT | SERVE_SEGMENTS | SERVE_BASE | SERVE_WINNER
    reason: str  # why a non-live experience serves one variant: "paused", "completed"
    traffic_allocation: float  # 0..1, share of eligible visitors who enter
    target: str  # "everyone" | "audiences"
    target_audiences: tuple[str, ...]  # slugs; a visitor must be in one (target "audiences")
    seed: str  # hash seed (the uid when none was set)
    hash_version: int
    phase: int  # current phase number (0: never activated)
    variants: tuple[VariantConfig, ...]  # in position order
    weights: tuple[float, ...]  # the split, aligned with ``variants`` (sums to 1)
    base: VariantConfig | None
    winner: VariantConfig | None
    segments: tuple[VariantConfig, ...]  # segmented: variants with an audience, by priority
    goals: tuple[GoalConfig, ...]  # the primary goal first
    version: int
    # the API-accessible, unarchived audiences its targeting reads (target audiences, segment
    # audiences): the ones live attributes are evaluated against (experiences.decide)
    api_audiences: frozenset[str]
    _by_ref: Mapping[str, VariantConfig] = field(repr=False, compare=False)

    @property
    def live(self) -> bool:
        """Visitors enter it (split or segments), rather than all getting one variant."""
        return self.serve in (SERVE_SPLIT, SERVE_SEGMENTS)

    @property
    def served(self) -> VariantConfig | None:
        """The one variant everyone gets when not live (the winner, else the base)."""
        return self.winner if self.serve == SERVE_WINNER else self.base

    @property
    def primary_goal(self) -> GoalConfig | None:
        return next((goal for goal in self.goals if goal.primary), None)

    def variant(self, ref: str) -> VariantConfig | None:
        """A variant by key or short uid."""
        return self._by_ref.get(ref)


@dataclass(frozen=True, slots=True)
class AccountConfig:
    account_id: int
    etag: str  # changes whenever anything in the snapshot may have changed
    experiences: tuple[ExperienceConfig, ...]  # active, paused and completed ones
    by_key: Mapping[str, ExperienceConfig]
    by_uid: Mapping[str, ExperienceConfig]
    draft_keys: frozenset[str]  # experiences that exist but were never activated

    def get(self, ref: str) -> ExperienceConfig | None:
        """An experience by key or short uid."""
        return self.by_key.get(ref) or self.by_uid.get(ref)

    @property
    def live(self) -> tuple[ExperienceConfig, ...]:
        return tuple(exp for exp in self.experiences if exp.live)


# --------------------------------------------------------------------------- the cache


@dataclass
class _Entry:
    config: AccountConfig
    fingerprint: str
    checked_at: float


_cache: dict[int, _Entry] = {}
_lock = threading.Lock()


def _ttl() -> float:
    return float(getattr(settings, "STRATA_EXPERIENCE_CONFIG_TTL", DEFAULT_TTL))


def active_config(account_id: int) -> AccountConfig:
    """The account's snapshot: no query within the TTL, one cheap check after it."""
    entry = _cache.get(account_id)
    now = time.monotonic()
    if entry is not None and now - entry.checked_at < _ttl():
        return entry.config
    fingerprint = _fingerprint(account_id)
    if entry is not None and entry.fingerprint == fingerprint:
        entry.checked_at = now
        return entry.config
    with _lock:  # one rebuild at a time: other threads wait and reuse it
        entry = _cache.get(account_id)
        if entry is not None and entry.fingerprint == fingerprint:
            return entry.config
        config = build_config(account_id, etag=_etag(fingerprint))
        _cache[account_id] = _Entry(config, fingerprint, time.monotonic())
    return config


def config_etag(account_id: int) -> str:
    """The snapshot's ETag (for OFREP's bulk answer): equal in every process for equal data."""
    return active_config(account_id).etag


def invalidate(account_id: int | None = None) -> None:
    """Forget the cached snapshot (of one account, or all): the next read rebuilds it."""
    if account_id is None:
        _cache.clear()
    else:
        _cache.pop(account_id, None)


def _fingerprint(account_id: int) -> str:
    """Aggregates that change with any change the snapshot reflects: one round trip."""
    experience = Experience._meta.db_table
    bandit = BanditWeights._meta.db_table
    audience = Experience.target_audiences.field.related_model._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            SELECT (SELECT count(*)::text || ':' || coalesce(sum(version), 0)::text || ':'
                           || coalesce(max(updated_at)::text, '')
                      FROM {experience} WHERE account_id = %s),
                   (SELECT coalesce(max(id), 0)::text FROM {bandit} WHERE account_id = %s),
                   (SELECT md5(coalesce(string_agg(id::text || slug || api_accessible::text
                                                   || archived::text, ',' ORDER BY id), ''))
                      FROM {audience} WHERE account_id = %s)
            """,  # noqa: S608 (table names come from the models)
            [account_id, account_id, account_id],
        )
        row = cursor.fetchone()
    return "|".join(str(part) for part in row)


def _etag(fingerprint: str) -> str:
    return hashlib.sha1(fingerprint.encode(), usedforsecurity=False).hexdigest()[:20]


# --------------------------------------------------------------------------- building


def build_config(account_id: int, *, etag: str = "") -> AccountConfig:
    """The snapshot from the database (uncached: ``active_config`` is the way in)."""
    experiences = list(
        Experience.objects.filter(account_id=account_id)
        .prefetch_related("target_audiences")
        .order_by("created_at", "id")
    )
    live = [exp for exp in experiences if exp.status != Experience.Status.DRAFT]
    ids = [exp.pk for exp in live]
    variants = _variants_by_experience(ids)
    goals = _goals_by_experience(ids)
    phase_weights = _phase_weights(live)
    bandit = _bandit_weights(live)
    built = tuple(
        _experience(exp, variants.get(exp.pk, []), goals.get(exp.pk, ()),
                    bandit.get(exp.pk) or phase_weights.get(exp.pk))
        for exp in live
    )
    return AccountConfig(
        account_id=account_id,
        etag=etag,
        experiences=built,
        by_key=MappingProxyType({exp.key: exp for exp in built}),
        by_uid=MappingProxyType({exp.uid: exp for exp in built}),
        draft_keys=frozenset(exp.key for exp in experiences
                             if exp.status == Experience.Status.DRAFT),
    )


def _variants_by_experience(ids: list[int]) -> dict[int, list[Variant]]:
    found: dict[int, list[Variant]] = {}
    rows = Variant.objects.filter(experience_id__in=ids).select_related("audience")
    for variant in rows.order_by("position", "id"):
        found.setdefault(variant.experience_id, []).append(variant)
    return found


def _goals_by_experience(ids: list[int]) -> dict[int, tuple[GoalConfig, ...]]:
    found: dict[int, list[GoalConfig]] = {}
    links = ExperienceGoal.objects.filter(experience_id__in=ids).select_related("goal")
    for link in links.order_by("-primary", "goal__key"):
        goal = link.goal
        found.setdefault(link.experience_id, []).append(GoalConfig(
            id=goal.pk, key=goal.key, event=goal.event, where=freeze(goal.where),
            stream=goal.stream, primary=link.primary,
        ))
    return {key: tuple(value) for key, value in found.items()}


def _phase_weights(experiences: Iterable[Experience]) -> dict[int, dict[str, float]]:
    wanted = {(exp.pk, exp.phase) for exp in experiences if exp.phase}
    if not wanted:
        return {}
    phases = Phase.objects.filter(experience_id__in={pk for pk, _n in wanted})
    return {phase.experience_id: dict(phase.weights) for phase in phases
            if (phase.experience_id, phase.number) in wanted}


def _bandit_weights(experiences: Iterable[Experience]) -> dict[int, dict[str, float]]:
    """The latest reweighting of each bandit's current phase."""
    wanted = {(exp.pk, exp.phase) for exp in experiences
              if exp.distribution == Experience.Distribution.BANDIT and exp.phase}
    if not wanted:
        return {}
    rows = (BanditWeights.objects.filter(experience_id__in={pk for pk, _n in wanted})
            .order_by("experience_id", "phase", "-at", "-id")
            .distinct("experience_id", "phase"))
    return {row.experience_id: dict(row.weights) for row in rows
            if (row.experience_id, row.phase) in wanted}


def _serve(exp: Experience) -> tuple[str, str]:
    if exp.status == Experience.Status.ACTIVE:
        return (SERVE_SEGMENTS if exp.type == Experience.Type.SEGMENTED else SERVE_SPLIT), ""
    if exp.status == Experience.Status.COMPLETED and exp.winner_id:
        return SERVE_WINNER, "completed"
    return SERVE_BASE, exp.status


def split_weights(keys: list[str], weights: Mapping[str, float] | None) -> list[float]:
    """Weights aligned with ``keys``: the given ones (normalised to sum to 1), an equal split
    when none are given or they sum to nothing."""
    given = [max(float((weights or {}).get(key, 0.0)), 0.0) for key in keys]
    total = sum(given)
    if not keys:
        return []
    if total <= 0:
        return [1 / len(keys)] * len(keys)
    return [weight / total for weight in given]


def _experience(exp: Experience, variants: list[Variant], goals: tuple[GoalConfig, ...],
                weights: Mapping[str, float] | None) -> ExperienceConfig:
    serve, reason = _serve(exp)
    shares = split_weights([v.key for v in variants], weights)
    built = tuple(
        VariantConfig(
            id=v.pk, key=v.key, uid=v.uid, name=v.name or v.key, value=freeze(v.value),
            content=freeze(v.content), is_base=v.is_base, weight=share,
            audience=v.audience.slug if v.audience is not None else None,
            priority=v.priority,
        )
        for v, share in zip(variants, shares, strict=True)
    )
    by_ref = {**{v.uid: v for v in built}, **{v.key: v for v in built}}
    base = next((v for v in built if v.is_base), None)
    winner = next((v for v in built if v.id == exp.winner_id), None)
    segments = tuple(sorted(
        (v for v in built if v.audience and not v.is_base),
        key=lambda v: (v.priority, built.index(v)),
    ))
    targets = list(exp.target_audiences.all()) \
        if exp.target == Experience.Target.AUDIENCES else []
    target_audiences = tuple(a.slug for a in targets)
    readable = [a for a in targets if a.api_accessible and not a.archived]
    readable += [v.audience for v in variants if v.audience is not None and not v.is_base
                 and v.audience.api_accessible and not v.audience.archived]
    return ExperienceConfig(
        id=exp.pk, key=exp.key, uid=exp.uid, name=exp.name, type=exp.type,
        distribution=exp.distribution, status=exp.status, value_type=exp.value_type,
        serve=serve, reason=reason, traffic_allocation=exp.traffic_allocation,
        target=exp.target, target_audiences=target_audiences, seed=exp.seed or exp.uid,
        hash_version=exp.hash_version, phase=exp.phase, variants=built,
        weights=tuple(shares), base=base, winner=winner, segments=segments, goals=goals,
        version=exp.version, api_audiences=frozenset(a.slug for a in readable),
        _by_ref=MappingProxyType(by_ref),
    )
