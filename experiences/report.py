"""Experiment results as data (issue 12, item 3): what the results page shows, for scripts.

``results_report(exp, phase=None, now=None)`` is ``results.phase_results`` (the figures the page
renders, at full precision) with

- ``as_of``: when the figures were computed (the counts are read in one transaction);
- ``engine``: the statistics engine's settings (gbstats-compatible defaults, the thresholds of
  the account, and for a bandit its schedule and Thompson sampling settings);
- ``by_goal``: per goal (the primary first) every variant's converters, conversions and rate,
  and for A/B tests and bandits the same comparisons the primary goal gets (uplift, chance to
  beat control, credible and confidence intervals, risk, p-value, chance to be best);
- ``history``: the page's charts over time (``results.history``: cumulative conversion rate
  and chance to be best per variant from the hourly snapshots and now, the traffic split);
- ``phases``: every phase of the experience (the others are read with ``?phase=``).

``csv_rows`` flattens one report into one row per goal and variant (the CSV download; numbers
at full precision, text cells defused as the audience export does).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from audiences.export import cell
from experiences import bandit, results, stats
from experiences.bandit_schedule import schedule_status
from experiences.models import Experience, Phase

CSV_COLUMNS = (
    "experience", "phase", "as_of", "goal", "primary_goal", "variant", "variant_name", "is_base",
    "weight", "visitors", "impression_visitors", "impressions", "converters", "conversions",
    "rate", "visible", "uplift", "chance_to_beat_control", "chance_to_be_best",
    "credible_interval_low", "credible_interval_high", "risk_control", "risk_variant",
    "p_value", "confidence_interval_low", "confidence_interval_high", "comparison_error",
    "srm_p_value", "srm_mismatch",
)


def engine_settings(exp: Experience, limits: dict[str, Any], now: datetime) -> dict[str, Any]:
    """How the figures were computed: what a reader needs to reproduce them."""
    found: dict[str, Any] = {
        "name": "gbstats-compatible (gbstats 0.8.0 defaults)",
        "metric": "binomial: visitors who converted / visitors who saw the variant",
        "effect": "relative uplift",
        "alpha": stats.ALPHA,
        "interval_level": 1 - stats.ALPHA,
        "bayesian_prior": "improper flat",
        "frequentist_test": "two-sided Welch t-test",
        "chance_to_be_best": "Gaussian posteriors per arm, integrated numerically",
        "srm_test": "chi-squared goodness of fit",
        "srm_p_threshold": stats.SRM_P_THRESHOLD,
        "thresholds": limits,
        "bandit": None,
    }
    if exp.distribution == Experience.Distribution.BANDIT:
        found["bandit"] = {
            "algorithm": "thompson_sampling", "draws": bandit.DRAWS,
            "min_share": bandit.MIN_SHARE,
            **schedule_status(exp, now=now)}
    return found


def _by_goal(answer: dict[str, Any]) -> list[dict[str, Any]]:
    """Per goal: each variant's counts, and the comparisons against control (A/B tests and
    bandits with two arms or more), as ``stats.experience_results`` gives them."""
    rows = answer["variants"]
    comparable = answer["srm"] is not None
    out = []
    for goal in answer["goals"]:
        counts = [(row["impressions"]["visitors"], row["conversions"][goal["key"]])
                  for row in rows]
        computed = (stats.experience_results(
            [stats.Counts(users, min(conv["visitors"], users)) for users, conv in counts],
            answer["srm"]["expected"])["variants"] if comparable else [None] * len(rows))
        variants = []
        for row, (users, conv), result in zip(rows, counts, computed, strict=True):
            variants.append({
                "key": row["key"], "visitors": users, "converters": conv["visitors"],
                "conversions": conv["total"],
                "rate": conv["visitors"] / users if users else 0.0,
                "chance_to_be_best": result["chance_to_be_best"] if result else None,
                "bayesian": result["bayesian"] if result else None,
                "frequentist": result["frequentist"] if result else None,
            })
        out.append({**goal, "variants": variants})
    return out


def results_report(exp: Experience, phase: int | None = None, *,
                   now: datetime | None = None) -> dict[str, Any] | None:
    """The results of one phase (the current one by default) as data; None if the experience
    never ran that phase."""
    now = now or timezone.now()
    with transaction.atomic():  # one snapshot of the counts (READ COMMITTED: one per query)
        answer = results.phase_results(exp, phase, now=now)
        if answer is None:
            return None
        phases = list(Phase.objects.filter(experience=exp).order_by("number"))
    return {
        **answer,
        "as_of": answer["at"],
        "engine": engine_settings(exp, answer["thresholds"], now),
        "by_goal": _by_goal(answer),
        "history": results.history(exp, answer["phase"], now=now, latest=answer),
        "phases": [{"number": p.number, "started_at": p.started_at.isoformat(),
                    "ended_at": p.ended_at.isoformat() if p.ended_at else None,
                    "reason": p.reason, "current": p.number == exp.phase} for p in phases],
    }


def csv_rows(report: dict[str, Any]) -> Iterator[list[Any]]:
    """One row per goal and variant; comparison cells blank for the control and segmented
    experiences."""
    names = {row["key"]: row for row in report["variants"]}
    srm = report["srm"] or {}
    for goal in report["by_goal"]:
        for row in goal["variants"]:
            variant = names[row["key"]]
            bayes = row["bayesian"] or {}
            freq = row["frequentist"] or {}
            credible = bayes.get("credible_interval") or [None, None]
            confidence = freq.get("confidence_interval") or [None, None]
            yield [cell(v) for v in (
                report["experience"], report["phase"], report["as_of"], goal["key"],
                goal["primary"], row["key"], variant["name"], variant["is_base"],
                variant["weight"], variant["visitors"], row["visitors"],
                variant["impressions"]["total"], row["converters"], row["conversions"],
                row["rate"], variant["visible"], bayes.get("uplift"),
                bayes.get("chance_to_beat_control"), row["chance_to_be_best"], credible[0],
                credible[1], bayes.get("risk_control"), bayes.get("risk_variant"),
                freq.get("p_value"), confidence[0], confidence[1],
                bayes.get("error") or freq.get("error"), srm.get("p_value"),
                srm.get("mismatch"))]


def results_csv(report: dict[str, Any]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    writer.writerows(csv_rows(report))
    return out.getvalue()
