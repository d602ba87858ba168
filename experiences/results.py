"""Results of an experience, per phase and variant (issue 6, part 6).

``phase_results(exp, phase=None, now=None)`` answers, for one phase (the current one by
default), one row per variant, the control (base variant) first:

- ``visitors``: visitors assigned to it in the phase (A/B tests and bandits; segmented
  experiences store no assignments, so their visitors are the ones who saw it);
- ``impressions``: ``{"visitors", "total"}`` (unique visitors who saw it; every impression);
- ``conversions``: per goal key ``{"visitors", "total"}`` (unique converters; every
  conversion event, the all-conversions metric), and for the primary goal ``primary``:
  ``{"visitors", "total", "rate"}`` (rate = converters / impression visitors);
- against control (A/B tests and bandits only: a segmented experience is not randomised, its
  variants are not comparable): ``bayesian`` (chance to beat control, relative uplift, 95 %
  credible interval, risk) and ``frequentist`` (p-value, 95 % confidence interval), and every
  arm's ``chance_to_be_best``, all from ``experiences.stats`` (matched to gbstats);
- ``visible``: whether the arm has enough data (``min_impressions`` impression visitors or
  ``min_conversions`` converters); the page shows comparisons only for visible arms against a
  visible control, and chance to be best once every arm is visible.

Around the rows: the sample-ratio-mismatch check (``srm``; for a bandit the expected split is
``stats.bandit_expected_split`` over the periods between its reweightings, each period's
impression visitors held to the weights it ran with), the winner suggestion
(``stats.suggest_winner``: ≥ ``winner_chance`` chance to be best after ≥ ``min_days``), the
thresholds used, and the experience's data-quality warnings. The whole answer is plain JSON:
``snapshot`` stores it as a ``ResultSnapshot`` (hourly by schedule, and on demand) and
``history`` reads those back for the charts over time (cumulative conversion rate and chance to
be best per variant) together with the traffic split over time (the phase's weights, then each
``BanditWeights`` row).

Counting is set-based: one GROUP BY variant query each over assignments, impressions and
conversions (and one over impressions by bandit period), whatever the traffic.

Thresholds (``thresholds(account)``) come from settings ``STRATA_RESULTS_MIN_IMPRESSIONS``
(1,000), ``STRATA_RESULTS_MIN_CONVERSIONS`` (30), ``STRATA_RESULTS_WINNER_CHANCE`` (0.95) and
``STRATA_RESULTS_MIN_DAYS`` (14), overridden per account by ``STRATA_RESULTS_ACCOUNTS``
(``{account slug: {"min_impressions": …}}``) and, when the account model has a JSON
``settings`` field, by its ``"experience_results"`` object.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, Exists, F, OuterRef, Sum
from django.utils import timezone

from experiences import stats
from experiences.models import (
    Assignment,
    BanditWeights,
    Conversion,
    DataQualityWarning,
    Experience,
    ExperienceGoal,
    Impression,
    Phase,
    ResultSnapshot,
    Variant,
)

if TYPE_CHECKING:
    from cdp_site.models import Account

SRM_WARNING = "sample_ratio_mismatch"
HISTORY_POINTS = 400
SECONDS_PER_DAY = 86400


# --------------------------------------------------------------------------- thresholds


@dataclass(frozen=True)
class Thresholds:
    min_impressions: int = stats.MIN_IMPRESSIONS
    min_conversions: int = stats.MIN_CONVERSIONS
    winner_chance: float = stats.WINNER_CHANCE
    min_days: float = stats.WINNER_MIN_DAYS


SETTING_NAMES = {
    "min_impressions": "STRATA_RESULTS_MIN_IMPRESSIONS",
    "min_conversions": "STRATA_RESULTS_MIN_CONVERSIONS",
    "winner_chance": "STRATA_RESULTS_WINNER_CHANCE",
    "min_days": "STRATA_RESULTS_MIN_DAYS",
}


def _overrides(account: Account) -> Mapping[str, Any]:
    by_slug = getattr(settings, "STRATA_RESULTS_ACCOUNTS", {}) or {}
    found = dict(by_slug.get(account.slug, {}))
    account_settings = getattr(account, "settings", None)  # a JSON field, if Account gains one
    if isinstance(account_settings, Mapping):
        found.update(account_settings.get("experience_results") or {})
    return found


def thresholds(account: Account) -> Thresholds:
    """The account's result thresholds: settings defaults, then its overrides."""
    defaults = Thresholds()
    values: dict[str, Any] = {}
    overrides = _overrides(account)
    for name, setting in SETTING_NAMES.items():
        kind = type(getattr(defaults, name))
        value = overrides.get(name, getattr(settings, setting, getattr(defaults, name)))
        values[name] = kind(value)
    return Thresholds(**values)


# --------------------------------------------------------------------------- counting


@dataclass
class Arm:
    """One variant's figures in a phase."""

    variant: Variant
    weight: float
    visitors: int = 0
    impression_visitors: int = 0
    impressions: int = 0
    conversions: dict[int, tuple[int, int]] | None = None  # goal id -> (visitors, total)

    def converted(self, goal_id: int | None) -> tuple[int, int]:
        if goal_id is None or not self.conversions:
            return 0, 0
        return self.conversions.get(goal_id, (0, 0))


def _phase(exp: Experience, number: int | None) -> Phase | None:
    wanted = exp.phase if number is None else number
    return Phase.objects.filter(experience=exp, number=wanted).first()


def current_weights(exp: Experience, phase: Phase) -> dict[str, float]:
    """The split the phase runs with now: its own weights, or a bandit's latest reweighting."""
    if exp.distribution == Experience.Distribution.BANDIT:
        latest = (BanditWeights.objects.filter(experience=exp, phase=phase.number)
                  .order_by("-at", "-id").values_list("weights", flat=True).first())
        if latest:
            return dict(latest)
    return dict(phase.weights or {})


def phase_arms(exp: Experience, phase: Phase) -> list[Arm]:
    """The phase's variants (the base first, then by position), with their counts and their
    current share of the split."""
    variants = sorted(exp.variants.all(), key=lambda v: (not v.is_base, v.position, v.pk))
    in_phase = set(phase.variant_keys or [])
    weights = current_weights(exp, phase)
    arms = {v.pk: Arm(v, float(weights.get(v.key, 0.0))) for v in variants}
    scope = {"experience_id": exp.pk, "phase": phase.number}
    for row in (Assignment.objects.filter(**scope).values("variant_id")
                .annotate(n=Count("id")).order_by()):
        if row["variant_id"] in arms:
            arms[row["variant_id"]].visitors = row["n"]
    for row in (Impression.objects.filter(**scope).values("variant_id")
                .annotate(n=Count("id"), total=Sum("count")).order_by()):
        if row["variant_id"] in arms:
            arm = arms[row["variant_id"]]
            arm.impression_visitors, arm.impressions = row["n"], row["total"] or 0
    for row in (Conversion.objects.filter(**scope).values("variant_id", "goal_id")
                .annotate(n=Count("id"), total=Sum("count")).order_by()):
        if row["variant_id"] in arms:
            arm = arms[row["variant_id"]]
            arm.conversions = arm.conversions or {}
            arm.conversions[row["goal_id"]] = (row["n"], row["total"] or 0)
    if exp.type == Experience.Type.SEGMENTED:
        for arm in arms.values():
            arm.visitors = arm.impression_visitors
    return [arm for arm in arms.values()
            if not in_phase or arm.variant.key in in_phase or arm.impression_visitors]


_BY_PERIOD = f"""
SELECT width_bucket(first_at, %s::timestamptz[]) AS period, variant_id, count(*)
FROM {Impression._meta.db_table}
WHERE experience_id = %s AND phase = %s
GROUP BY 1, 2
"""  # noqa: S608 (the table name comes from the model)


def bandit_periods(exp: Experience, phase: Phase) -> list[tuple[datetime, dict[str, float]]]:
    """The splits a phase ran with: (from, weights by key), the phase's own first, then each
    reweighting."""
    rows = BanditWeights.objects.filter(experience=exp, phase=phase.number).order_by("at", "id")
    return [(phase.started_at, dict(phase.weights or {}))] + [
        (row.at, dict(row.weights)) for row in rows]


def _bandit_expected(exp: Experience, phase: Phase, arms: list[Arm]) -> list[float]:
    """Expected impression visitors per arm: each period's visitors split by its weights."""
    periods = bandit_periods(exp, phase)
    starts = [at for at, _weights in periods[1:]]
    users = [0] * len(periods)
    with connection.cursor() as cursor:
        cursor.execute(_BY_PERIOD, [starts, exp.pk, phase.number])
        for period, _variant, n in cursor.fetchall():
            users[period] += n
    keys = [arm.variant.key for arm in arms]
    split = [(n, [float(weights.get(key, 0.0)) for key in keys])
             for n, (_at, weights) in zip(users, periods, strict=True)]
    split = [(n, w) for n, w in split if n and sum(w) > 0]
    if not split:
        return [arm.weight for arm in arms]
    return stats.bandit_expected_split(split)


# --------------------------------------------------------------------------- results


def _goals(exp: Experience) -> list[dict[str, Any]]:
    links = ExperienceGoal.objects.filter(experience=exp).select_related("goal")
    return [{"id": link.goal_id, "key": link.goal.key, "name": link.goal.name,
             "event": link.goal.event, "primary": link.primary}
            for link in links.order_by("-primary", "goal__name")]


def _row(arm: Arm, goals: list[dict[str, Any]], primary_id: int | None,
         limits: Thresholds) -> dict[str, Any]:
    variant = arm.variant
    converters, total = arm.converted(primary_id)
    users = arm.impression_visitors
    return {
        "key": variant.key, "uid": variant.uid, "name": variant.name or variant.key,
        "is_base": variant.is_base, "weight": arm.weight,
        "visitors": arm.visitors,
        "impressions": {"visitors": users, "total": arm.impressions},
        "conversions": {goal["key"]: dict(zip(("visitors", "total"),
                                              arm.converted(goal["id"]), strict=True))
                        for goal in goals},
        "primary": {"visitors": converters, "total": total,
                    "rate": converters / users if users else 0.0},
        "visible": stats.results_visible(
            stats.Counts(users, min(converters, users)),
            min_impressions=limits.min_impressions, min_conversions=limits.min_conversions),
        "chance_to_be_best": None, "bayesian": None, "frequentist": None,
    }


def _compare(exp: Experience, phase: Phase, arms: list[Arm], rows: list[dict[str, Any]],
             days: float, limits: Thresholds) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """Fill the rows' comparisons; the SRM check and the winner suggestion."""
    if exp.type == Experience.Type.SEGMENTED or len(arms) < 2:
        return None, {"variant": None, "reason": "not_an_ab_test"}
    counts = [stats.Counts(row["impressions"]["visitors"],
                           min(row["primary"]["visitors"], row["impressions"]["visitors"]))
              for row in rows]
    expected = (_bandit_expected(exp, phase, arms)
                if exp.distribution == Experience.Distribution.BANDIT
                else [arm.weight for arm in arms])
    if sum(expected) <= 0:
        expected = [1.0] * len(arms)
    computed = stats.experience_results(counts, expected)
    for row, result in zip(rows, computed["variants"], strict=True):
        row["chance_to_be_best"] = result["chance_to_be_best"]
        row["bayesian"] = result["bayesian"]
        row["frequentist"] = result["frequentist"]
    suggestion = stats.suggest_winner(
        computed, days_running=days, min_chance=limits.winner_chance, min_days=limits.min_days,
        min_impressions=limits.min_impressions, min_conversions=limits.min_conversions)
    winner = suggestion["winner"]
    srm = {**computed["srm"], "expected": [float(x) for x in expected]}
    return srm, {"variant": rows[winner]["key"] if winner is not None else None,
                 "reason": suggestion["reason"]}


def _warnings(exp: Experience) -> list[dict[str, Any]]:
    return [{"code": w.code, "count": w.count, "first_at": w.first_at.isoformat(),
             "last_at": w.last_at.isoformat(), "sample": w.sample}
            for w in DataQualityWarning.objects.filter(experience=exp).order_by("code")]


def phase_results(exp: Experience, phase: int | None = None, *,
                  now: datetime | None = None) -> dict[str, Any] | None:
    """The results of one phase (the current one by default), as JSON; None if the experience
    never ran that phase."""
    found = _phase(exp, phase)
    if found is None:
        return None
    now = now or timezone.now()
    limits = thresholds(exp.account)
    goals = _goals(exp)
    primary = next((g for g in goals if g["primary"]), None)
    arms = phase_arms(exp, found)
    rows = [_row(arm, goals, primary["id"] if primary else None, limits) for arm in arms]
    ended = found.ended_at or now
    days = max((ended - found.started_at).total_seconds(), 0) / SECONDS_PER_DAY
    srm, winner = _compare(exp, found, arms, rows, days, limits)
    return {
        "experience": exp.key, "phase": found.number, "at": now.isoformat(),
        "started_at": found.started_at.isoformat(),
        "ended_at": found.ended_at.isoformat() if found.ended_at else None,
        "days_running": days, "type": exp.type, "distribution": exp.distribution,
        "goals": [{k: g[k] for k in ("key", "name", "event", "primary")} for g in goals],
        "primary_goal": primary["key"] if primary else None,
        "thresholds": asdict(limits),
        "variants": rows,
        "visible": bool(rows) and all(row["visible"] for row in rows),
        "srm": srm,
        "winner": winner,
        "warnings": _warnings(exp),
    }


# --------------------------------------------------------------------------- snapshots


def _record_srm(exp: Experience, results: Mapping[str, Any], now: datetime) -> None:
    """A snapshot that finds a sample ratio mismatch counts it as a data-quality warning."""
    srm = results.get("srm")
    if not srm or not srm["mismatch"]:
        return
    sample = {"phase": results["phase"], "p_value": srm["p_value"],
              "users": [row["impressions"]["visitors"] for row in results["variants"]],
              "expected": srm["expected"]}
    row, created = DataQualityWarning.objects.get_or_create(
        account_id=exp.account_id, experience=exp, code=SRM_WARNING,
        defaults={"count": 1, "first_at": now, "last_at": now, "sample": sample})
    if not created:
        DataQualityWarning.objects.filter(pk=row.pk).update(count=F("count") + 1, last_at=now,
                                                            sample=sample)


@transaction.atomic
def snapshot(exp: Experience, *, now: datetime | None = None) -> ResultSnapshot | None:
    """Store the current phase's results (None before the experience ever ran)."""
    now = now or timezone.now()
    results = phase_results(exp, now=now)
    if results is None:
        return None
    _record_srm(exp, results, now)
    results["warnings"] = _warnings(exp)
    return ResultSnapshot.objects.create(account_id=exp.account_id, experience=exp,
                                         phase=results["phase"], at=now, results=results)


def running(account_id: int | None = None) -> Iterable[Experience]:
    """Experiences that collect results: active or paused, with a phase."""
    found = Experience.objects.filter(
        status__in=[Experience.Status.ACTIVE, Experience.Status.PAUSED], phase__gt=0)
    if account_id is not None:
        found = found.filter(account_id=account_id)
    return found.select_related("account").order_by("account_id", "id")


def snapshot_running(*, now: datetime | None = None) -> list[ResultSnapshot]:
    """The hourly schedule: a snapshot of every running experience of every account."""
    now = now or timezone.now()
    return [snap for exp in running() if (snap := snapshot(exp, now=now)) is not None]


# --------------------------------------------------------------------------- over time


def _thin(items: list[Any], limit: int = HISTORY_POINTS) -> list[Any]:
    """At most ``limit`` items, evenly spread, always keeping the last."""
    if len(items) <= limit:
        return items
    step = len(items) / (limit - 1)
    picked = [items[int(i * step)] for i in range(limit - 1)]
    return [*picked, items[-1]]


def _split_history(exp: Experience, phase: Phase, keys: list[str],
                   now: datetime) -> dict[str, Any]:
    """The configured split over time: a step per reweighting, up to the phase's end."""
    periods = bandit_periods(exp, phase) if exp.distribution == Experience.Distribution.BANDIT \
        else [(phase.started_at, dict(phase.weights or {}))]
    periods = _thin(periods)
    end = phase.ended_at or now
    times = [at.isoformat() for at, _w in periods] + [end.isoformat()]
    series = {key: [float(w.get(key, 0.0)) for _at, w in periods] for key in keys}
    for key in keys:  # the last split holds until the end
        series[key].append(series[key][-1] if series[key] else 0.0)
    return {"times": times, "series": series}


def history(exp: Experience, phase: int | None = None, *,
            now: datetime | None = None, latest: Mapping[str, Any] | None = None
            ) -> dict[str, Any]:
    """The charts over time of one phase: from its snapshots, cumulative conversion rate and
    chance to be best per variant; from its weights, the traffic split. ``latest`` (the
    phase's results now, as ``phase_results`` gives them) ends the lines at ``now``, so a
    running experience's charts show where it stands before the first hourly snapshot."""
    now = now or timezone.now()
    found = _phase(exp, phase)
    if found is None:
        return {"times": [], "conversion_rate": {}, "chance_to_be_best": {},
                "split": {"times": [], "series": {}}}
    keys = [arm.variant.key for arm in phase_arms(exp, found)]
    snaps = _thin(list(ResultSnapshot.objects.filter(experience=exp, phase=found.number)
                       .order_by("at", "id").values_list("at", "results")))
    if latest is not None and latest.get("phase") == found.number and found.ended_at is None:
        snaps.append((now, latest))
    rate: dict[str, list[float | None]] = {key: [] for key in keys}
    best: dict[str, list[float | None]] = {key: [] for key in keys}
    for _at, results in snaps:
        by_key = {row["key"]: row for row in results.get("variants", [])}
        for key in keys:
            row = by_key.get(key)
            rate[key].append(row["primary"]["rate"] if row else None)
            best[key].append(row.get("chance_to_be_best") if row else None)
    return {"times": [at.isoformat() for at, _r in snaps], "conversion_rate": rate,
            "chance_to_be_best": best, "split": _split_history(exp, found, keys, now)}


# --------------------------------------------------------------------------- the list


def overview(account_id: int, experiences: Iterable[Experience]) -> dict[int, dict[str, Any]]:
    """For the list page: per experience (current phase) the visitors who saw it and the
    primary goal's converters and rate. Two GROUP BY queries for the whole list."""
    ids = [exp.pk for exp in experiences]
    seen = {row["experience_id"]: row["n"] for row in (
        Impression.objects.filter(account_id=account_id, experience_id__in=ids,
                                  phase=F("experience__phase"))
        .values("experience_id").annotate(n=Count("id")).order_by())}
    primary = ExperienceGoal.objects.filter(experience_id=OuterRef("experience_id"),
                                            goal_id=OuterRef("goal_id"), primary=True)
    converted = {row["experience_id"]: row["n"] for row in (
        Conversion.objects.filter(account_id=account_id, experience_id__in=ids,
                                  phase=F("experience__phase"))
        .filter(Exists(primary)).values("experience_id").annotate(n=Count("id")).order_by())}
    return {pk: {"visitors": seen.get(pk, 0), "conversions": converted.get(pk, 0),
                 "rate": converted.get(pk, 0) / seen[pk] if seen.get(pk) else None}
            for pk in ids}
