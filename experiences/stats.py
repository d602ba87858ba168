"""Results of a conversion experiment, computed as GrowthBook's `gbstats` computes them.

Every number here matches gbstats (0.8.0, its defaults) to 4 decimal places on the same inputs;
tests/experiences/test_stats.py runs gbstats beside these functions to prove it. The formulas and
the reasons behind them are in docs/experiences-statistics.md. In short, for a binomial metric:

- each arm's conversion rate p = conversions / users has variance p(1 - p) per user;
- the effect of a variant is the *relative* uplift (p_b - p_a) / p_a, whose variance comes from
  the delta method;
- Bayesian: a Gaussian posterior on that uplift (improper flat prior by default, as gbstats),
  giving chance to beat control, a credible interval and risk (expected loss);
- frequentist: a two-sided Welch t-test on the same uplift (p-value, confidence interval);
- chance to be best: the probability that an arm's rate is the highest under independent
  Gaussian posteriors of each arm's rate (GrowthBook's "best arm probability"), integrated
  numerically rather than sampled, so it is exact and repeatable;
- sample-ratio mismatch: a chi-squared goodness-of-fit test of users against the expected split.

Inputs are plain counts so the models, the API and the pages can all call these functions.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, NamedTuple

from scipy import integrate
from scipy.stats import chi2, norm, t

ALPHA = 0.05
SRM_P_THRESHOLD = 0.001
MIN_IMPRESSIONS = 1000
MIN_CONVERSIONS = 30
WINNER_CHANCE = 0.95
WINNER_MIN_DAYS = 14
# gbstats' defaults for a metric's prior: used only when prior_proper is True.
PRIOR_MEAN = 0.0
PRIOR_STDDEV = 0.1
SQRT_2PI = math.sqrt(2 * math.pi)

# Why an arm could not be compared (gbstats' error messages, in our own words).
BASELINE_ZERO = "baseline_zero"  # gbstats ZERO_NEGATIVE_BASELINE_VARIATION
NO_UNITS = "no_units"  # gbstats NO_UNITS_IN_VARIATION
ZERO_VARIANCE = "zero_variance"  # gbstats ZERO_NEGATIVE_VARIANCE


class Counts(NamedTuple):
    """One arm: visitors who saw it (impressions, once per visitor) and those who converted."""

    users: int
    conversions: int


class StatsInputError(ValueError):
    """Counts that cannot describe an experiment (negative, or more conversions than users)."""

    code = "invalid_counts"


def as_counts(value: Sequence[int]) -> Counts:
    """Validated (users, conversions); StatsInputError says what is wrong."""
    try:
        users, conversions = value
        whole = all(
            not isinstance(n, bool) and float(n).is_integer() for n in (users, conversions)
        )
    except (TypeError, ValueError):
        whole = False
    if not whole:
        raise StatsInputError("each arm must be (users, conversions), whole numbers")
    if users < 0 or conversions < 0:
        raise StatsInputError("users and conversions cannot be negative")
    if conversions > users:
        raise StatsInputError(f"{conversions} conversions cannot come from {users} users")
    return Counts(int(users), int(conversions))


def _rate(arm: Counts) -> float:
    return arm.conversions / arm.users if arm.users else 0.0


def _variance(rate: float) -> float:
    """Per-user variance of a 0/1 outcome, as gbstats' ProportionStatistic (no n - 1)."""
    return rate * (1 - rate)


# --- Relative uplift and its variance (gbstats frequentist_diff / frequentist_variance) ---------


def _relative_uplift(control: Counts, variant: Counts) -> tuple[float, float]:
    """(p_b - p_a) / p_a and its delta-method variance."""
    pa, pb = _rate(control), _rate(variant)
    mean = (pb - pa) / pa
    variance = _variance(pb) / (pa**2 * variant.users) + _variance(pa) * pb**2 / (
        pa**4 * control.users
    )
    return mean, variance


def _comparison_error(control: Counts, variant: Counts, *, bayesian: bool) -> str | None:
    """The reason gbstats gives up on a comparison, checked in gbstats' order."""
    if _rate(control) == 0:
        return BASELINE_ZERO
    if bayesian and (control.users == 0 or variant.users == 0):
        return NO_UNITS
    if _variance(_rate(control)) <= 0 or _variance(_rate(variant)) <= 0:
        return ZERO_VARIANCE
    return None


def _fallback_uplift(control: Counts, variant: Counts, expected: float) -> float:
    """What gbstats reports as `expected` when its test gave none (analyze_metric_df)."""
    pa = _rate(control)
    if pa <= 0:
        return 0.0
    if expected == 0:
        return (_rate(variant) - pa) / pa
    return expected


# --- Bayesian (gbstats EffectBayesianABTest, relative effect) -----------------------------------


def _risk(mean: float, stddev: float) -> tuple[float, float]:
    """Expected relative loss of shipping control, and of shipping the variant.

    gbstats: risk_ctrl = P(effect > 0) E[effect | effect > 0],
             risk_trt = -P(effect < 0) E[effect | effect < 0]; closed forms of the truncated
    normal means.
    """
    z = -mean / stddev
    density = norm.pdf(z)
    risk_control = mean * norm.sf(z) + stddev * density
    risk_variant = stddev * density - mean * norm.cdf(z)
    return float(risk_control), float(risk_variant)


def bayesian_comparison(
    control: Counts,
    variant: Counts,
    *,
    alpha: float = ALPHA,
    prior_proper: bool = False,
    prior_mean: float = PRIOR_MEAN,
    prior_stddev: float = PRIOR_STDDEV,
) -> dict[str, Any]:
    """Chance to beat control, credible interval and risk of the relative uplift."""
    control, variant = as_counts(control), as_counts(variant)
    error = _comparison_error(control, variant, bayesian=True)
    if error:
        return {
            "chance_to_beat_control": 0.5,
            "uplift": _fallback_uplift(control, variant, 0.0),
            "uplift_stddev": 0.0,
            "credible_interval": [0.0, 0.0],
            "risk_control": 0.0,
            "risk_variant": 0.0,
            "error": error,
        }
    data_mean, data_variance = _relative_uplift(control, variant)
    prior_variance = prior_stddev**2
    precision = 1 / data_variance + (1 / prior_variance if prior_proper else 0)
    mean = (
        (data_mean / data_variance + prior_mean / prior_variance) / precision
        if prior_proper
        else data_mean
    )
    stddev = math.sqrt(1 / precision)
    low = norm.ppf(alpha / 2, mean, stddev)
    high = norm.ppf(1 - alpha / 2, mean, stddev)
    risk_control, risk_variant = _risk(mean, stddev)
    return {
        "chance_to_beat_control": float(norm.sf(0, mean, stddev)),
        "uplift": _fallback_uplift(control, variant, mean),
        "uplift_stddev": stddev,
        "credible_interval": [float(low), float(high)],
        "risk_control": risk_control,
        "risk_variant": risk_variant,
        "error": None,
    }


# --- Frequentist (gbstats TwoSidedTTest, relative effect) ---------------------------------------


def _welch_dof(control: Counts, variant: Counts) -> float:
    va, vb = _variance(_rate(control)), _variance(_rate(variant))
    na, nb = control.users, variant.users
    return (vb / nb + va / na) ** 2 / (
        vb**2 / (nb**2 * (nb - 1)) + va**2 / (na**2 * (na - 1))
    )


def frequentist_comparison(
    control: Counts, variant: Counts, *, alpha: float = ALPHA
) -> dict[str, Any]:
    """Two-sided Welch t-test of the relative uplift: p-value and confidence interval."""
    control, variant = as_counts(control), as_counts(variant)
    error = _comparison_error(control, variant, bayesian=False)
    if error:
        return {
            "p_value": 1.0,
            "uplift": _fallback_uplift(control, variant, 0.0),
            "uplift_stddev": 0.0,
            "confidence_interval": [0.0, 0.0],
            "error": error,
        }
    mean, variance = _relative_uplift(control, variant)
    stddev = math.sqrt(variance)
    dof = _welch_dof(control, variant)
    width = float(t.ppf(1 - alpha / 2, dof)) * stddev
    return {
        "p_value": float(2 * t.sf(abs(mean / stddev), dof)),
        "uplift": _fallback_uplift(control, variant, mean),
        "uplift_stddev": stddev,
        "confidence_interval": [mean - width, mean + width],
        "error": None,
    }


def variant_results(control: Counts, variant: Counts, *, alpha: float = ALPHA) -> dict[str, Any]:
    """Everything the results table shows for one variant against control."""
    control, variant = as_counts(control), as_counts(variant)
    return {
        "users": variant.users,
        "conversions": variant.conversions,
        "conversion_rate": _rate(variant),
        "bayesian": bayesian_comparison(control, variant, alpha=alpha),
        "frequentist": frequentist_comparison(control, variant, alpha=alpha),
    }


# --- Chance to be best -------------------------------------------------------------------------


def _phi(z: float) -> float:
    return math.exp(-0.5 * z * z) / SQRT_2PI


def _cdf(z: float) -> float:
    return 0.5 * math.erfc(-z / math.sqrt(2))


def _best_of_point_mass(index: int, means: list[float], stddevs: list[float]) -> float:
    """P(arm `index`, whose rate is known exactly, is highest); ties share equally."""
    mine = means[index]
    chance = 1.0
    ties = 1
    for j, (mean, stddev) in enumerate(zip(means, stddevs, strict=True)):
        if j == index:
            continue
        if stddev > 0:
            chance *= _cdf((mine - mean) / stddev)
        elif mean > mine:
            return 0.0
        elif mean == mine:
            ties += 1
    return chance / ties


def _best_of_gaussian(index: int, means: list[float], stddevs: list[float]) -> float:
    """P(arm `index` is highest) = ∫ φ(z) ∏_j F_j(m_i + s_i z) dz over z.

    The integrand uses math.erfc rather than scipy's per-call distributions: it is evaluated a
    few hundred times per arm, and the results page computes it for every day of a phase.
    """
    mine, scale = means[index], stddevs[index]
    others = [(m, s) for j, (m, s) in enumerate(zip(means, stddevs, strict=True)) if j != index]

    def integrand(z: float) -> float:
        x = mine + scale * z
        value = _phi(z)
        for mean, stddev in others:
            value *= _cdf((x - mean) / stddev) if stddev > 0 else float(x > mean)
        return value

    breaks = [(m - mine) / scale for m, s in others if s == 0 and abs(m - mine) < 12 * scale]
    value, _ = integrate.quad(integrand, -12, 12, points=breaks or None, epsabs=1e-10,
                              epsrel=1e-8, limit=200)
    return value


def chance_to_be_best(arms: Sequence[Counts]) -> list[float] | None:
    """Each arm's probability of having the highest conversion rate (None without data).

    GrowthBook's best-arm probability: independent Gaussian posteriors N(p, p(1 - p) / n) with a
    flat prior. GrowthBook samples them; here the same probability is integrated numerically.
    """
    arms = [as_counts(arm) for arm in arms]
    if any(arm.users == 0 for arm in arms):
        return None
    means = [_rate(arm) for arm in arms]
    stddevs = [math.sqrt(_variance(_rate(arm)) / arm.users) for arm in arms]
    return [
        _best_of_gaussian(i, means, stddevs) if stddevs[i] > 0
        else _best_of_point_mass(i, means, stddevs)
        for i in range(len(arms))
    ]


# --- Sample-ratio mismatch ---------------------------------------------------------------------


def srm_p_value(users: Sequence[int], weights: Sequence[float]) -> float:
    """Chi-squared goodness of fit of users to the expected split (gbstats check_srm)."""
    if len(users) != len(weights):
        raise StatsInputError("one weight per variant is needed")
    total_users = sum(users)
    if not total_users:
        return 1.0
    total_weight = sum(weights)
    statistic = 0.0
    for observed, weight in zip(users, weights, strict=True):
        if weight <= 0:
            continue
        expected = weight / total_weight * total_users
        statistic += (observed - expected) ** 2 / expected
    return float(chi2.sf(statistic, len(users) - 1))


def srm_check(
    users: Sequence[int], weights: Sequence[float], *, threshold: float = SRM_P_THRESHOLD
) -> dict[str, Any]:
    p_value = srm_p_value(users, weights)
    return {"p_value": p_value, "mismatch": p_value < threshold, "threshold": threshold}


def bandit_expected_split(periods: Sequence[tuple[int, Sequence[float]]]) -> list[float]:
    """Expected users per arm over periods that each ran with their own weights.

    A bandit changes its split as it goes; its SRM check compares users with what each period's
    weights should have produced (as gbstats' bandits do). Pass the result as `weights`.
    """
    if not periods:
        raise StatsInputError("at least one period is needed")
    width = len(periods[0][1])
    expected = [0.0] * width
    for users, weights in periods:
        if len(weights) != width:
            raise StatsInputError("every period needs one weight per arm")
        total = sum(weights)
        for i, weight in enumerate(weights):
            expected[i] += users * weight / total
    return expected


# --- The whole experience ----------------------------------------------------------------------


def experience_results(
    counts: Sequence[Counts], weights: Sequence[float], *, alpha: float = ALPHA
) -> dict[str, Any]:
    """Results per variant (index 0 is control) and the SRM check, for one phase.

    `weights` is the split the phase was meant to have (or bandit_expected_split for a bandit).
    """
    arms = [as_counts(arm) for arm in counts]
    if len(arms) < 2:
        raise StatsInputError("an experience needs a control and at least one variant")
    best = chance_to_be_best(arms)
    control = arms[0]
    variants: list[dict[str, Any]] = [{
        "users": control.users,
        "conversions": control.conversions,
        "conversion_rate": _rate(control),
        "control": True,
        "chance_to_be_best": best[0] if best else None,
        "bayesian": None,
        "frequentist": None,
    }]
    for index, arm in enumerate(arms[1:], start=1):
        row = variant_results(control, arm, alpha=alpha)
        row["control"] = False
        row["chance_to_be_best"] = best[index] if best else None
        variants.append(row)
    return {"variants": variants, "srm": srm_check([arm.users for arm in arms], weights)}


# --- When to show results and suggest a winner (settings per account) ------------------------


def results_visible(
    counts: Counts,
    *,
    min_impressions: int = MIN_IMPRESSIONS,
    min_conversions: int = MIN_CONVERSIONS,
) -> bool:
    """A variant's results show once it has enough impressions or enough conversions."""
    arm = as_counts(counts)
    return arm.users >= min_impressions or arm.conversions >= min_conversions


def suggest_winner(
    results: dict[str, Any],
    *,
    days_running: float,
    min_chance: float = WINNER_CHANCE,
    min_days: float = WINNER_MIN_DAYS,
    min_impressions: int = MIN_IMPRESSIONS,
    min_conversions: int = MIN_CONVERSIONS,
) -> dict[str, Any]:
    """The variant to roll out, if any, from experience_results: {"winner", "reason"}.

    A winner needs every variant's results visible, no sample-ratio mismatch (the split itself is
    then suspect), `min_days` of running, and a chance to be best of at least `min_chance`.
    The winner may be control (index 0): keep what you have.
    """
    rows = results["variants"]
    if not all(
        results_visible(Counts(row["users"], row["conversions"]), min_impressions=min_impressions,
                        min_conversions=min_conversions)
        for row in rows
    ):
        return {"winner": None, "reason": "not_enough_data"}
    if results["srm"]["mismatch"]:
        return {"winner": None, "reason": "sample_ratio_mismatch"}
    if days_running < min_days:
        return {"winner": None, "reason": "too_early"}
    chances = [row["chance_to_be_best"] or 0.0 for row in rows]
    leader = max(range(len(chances)), key=chances.__getitem__)
    if chances[leader] >= min_chance:
        return {"winner": leader, "reason": "winner"}
    return {"winner": None, "reason": "no_clear_winner"}
