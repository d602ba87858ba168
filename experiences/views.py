"""Experience pages for marketers (under /experiences/, namespace ``experiences``): the list
and an experience's page (summary, variants with a content preview, the results table, the
three charts over time, SRM and data-quality warnings, the winner suggestion, and the
activate / pause / resume / complete actions).

Thin views: figures come from ``experiences.results``; actions call ``experiences.lifecycle``
(refusals are shown on the page, nothing changes). Reading needs ``experiences.view``;
actions ``experiences.edit``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.contrib import messages
from django.http import HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from cdp_site.shell import page_actor, render_page, strata_page
from experiences import lifecycle, results
from experiences.bandit_schedule import reweight_now, schedule_status
from experiences.models import Experience, Phase
from experiences.preview import parse_visitor, would_see

if TYPE_CHECKING:
    from django.http import HttpRequest

    from cdp_site.tenancy import Actor

SECTION = "experiences"
DASH = "\u2013"

STATUS_BADGES: dict[str, tuple[str, str]] = {
    Experience.Status.DRAFT: ("badge", "Draft"),
    Experience.Status.ACTIVE: ("badge ok", "Active"),
    Experience.Status.PAUSED: ("badge warn", "Paused"),
    Experience.Status.COMPLETED: ("badge done", "Completed"),
}

# Actions offered by status, in button order (the status machine is lifecycle.TRANSITIONS).
ACTION_LABELS = {"activate": "Activate", "pause": "Pause", "resume": "Resume",
                 "complete": "Complete"}

REASONS = {
    "not_enough_data": "Not every variant has enough data yet.",
    "sample_ratio_mismatch": "The traffic split does not match the intended one (sample ratio "
                             "mismatch): results are suspect until the cause is found.",
    "too_early": "Too early: a winner is suggested after {min_days:g} days.",
    "no_clear_winner": "No variant has a {winner_chance:.0%} chance to be best yet.",
    "winner": "{variant} has a {chance:.1%} chance to be best after {days:.0f} days.",
    "not_an_ab_test": "Segmented experiences serve each audience its variant; there is no "
                      "winner to pick.",
}

ERRORS = {  # why experiences.stats could not compare a variant (gbstats' reasons)
    "baseline_zero": "The control has no conversions yet: nothing to compare with.",
    "no_units": "An arm has no visitors.",
    "zero_variance": "A rate of exactly 0 % or 100 %: no spread to compare.",
}

WARNING_TEXT = {
    "impression_not_assigned": "Impressions of a variant the visitor was not given (ignored)",
    "conversion_without_impression": "Goal events from assigned visitors who never saw the "
                                     "experience (not counted as conversions)",
    "sample_ratio_mismatch": "Sample ratio mismatch found by a results snapshot",
}


def kind_label(exp: Experience) -> str:
    if exp.type == Experience.Type.SEGMENTED:
        return "Segmented"
    if exp.distribution == Experience.Distribution.BANDIT:
        return "Multi-armed bandit"
    return "A/B test"


def status_badge(status: str) -> dict[str, str]:
    css, label = STATUS_BADGES.get(status, ("badge", status))
    return {"css": css, "label": label, "status": status}


# --------------------------------------------------------------------------- formatting


def pct(value: float | None, digits: int = 1, *, signed: bool = False) -> str:
    if value is None:
        return DASH
    sign = "+" if signed and value > 0 else ""
    return f"{sign}{value * 100:.{digits}f} %"


NBSP = "\u00a0"


def interval_text(bounds: list[float] | None) -> str:
    if not bounds:
        return DASH
    low, high = bounds
    # each bound keeps its sign, digits and % together: a narrow column breaks after "to"
    return (f"{pct(low, signed=True).replace(' ', NBSP)} to "
            f"{pct(high, signed=True).replace(' ', NBSP)}")


def p_value_text(value: float | None) -> str:
    if value is None:
        return DASH
    return "< 0.001" if value < 0.001 else f"{value:.3f}"


def _comparison(row: dict[str, Any], shown: bool) -> dict[str, Any]:
    """The comparison cells of one row (blank for the control or until there is data)."""
    bayes, freq = row["bayesian"], row["frequentist"]
    if row["is_base"] or not bayes:
        return {"kind": "control" if row["is_base"] else "none"}
    if not shown:
        return {"kind": "hidden"}
    chance = bayes["chance_to_beat_control"]
    return {
        "kind": "shown",
        "uplift": pct(bayes["uplift"], signed=True),
        "uplift_sign": "up" if bayes["uplift"] > 0 else "down" if bayes["uplift"] < 0 else "",
        "chance_to_beat": pct(chance),
        "chance_class": "good" if chance >= 0.95 else "bad" if chance <= 0.05 else "",
        "credible_interval": interval_text(bayes["credible_interval"]),
        "risk": pct(bayes["risk_variant"], 2),
        "error": ERRORS.get(bayes["error"] or "", ""),
        "p_value": p_value_text(freq["p_value"]),
        "confidence_interval": interval_text(freq["confidence_interval"]),
    }


def table_rows(answer: dict[str, Any]) -> list[dict[str, Any]]:
    """The results table as display strings. A variant's figures show once it has enough data
    (``visible``); the intervals say how sure they are, the winner waits for every arm."""
    out = []
    for row in answer["variants"]:
        out.append({
            "key": row["key"], "name": row["name"], "is_base": row["is_base"],
            "weight": pct(row["weight"], 0) if answer["type"] != "segmented" else DASH,
            "visitors": row["visitors"],
            "impression_visitors": row["impressions"]["visitors"],
            "impressions": row["impressions"]["total"],
            "converters": row["primary"]["visitors"],
            "conversions": row["primary"]["total"],
            "rate": pct(row["primary"]["rate"], 2),
            "visible": row["visible"],
            "best": pct(row["chance_to_be_best"]) if row["visible"]
            and row["chance_to_be_best"] is not None else DASH,
            "leader": answer["winner"]["variant"] == row["key"],
            "compare": _comparison(row, row["visible"]),
        })
    return out


def winner_text(answer: dict[str, Any]) -> str:
    winner = answer["winner"]
    limits = answer["thresholds"]
    leader = next((row for row in answer["variants"] if row["key"] == winner["variant"]), None)
    return REASONS.get(winner["reason"], winner["reason"]).format(
        variant=leader["name"] if leader else "", days=answer["days_running"],
        chance=(leader or {}).get("chance_to_be_best") or 0, **limits)


def preview(variant: Any, value_type: str) -> dict[str, Any]:
    """A variant's content as a card: a title (headline, label, title or the value), other
    fields listed, and the JSON."""
    content = variant.content if isinstance(variant.content, dict) else {}
    value = variant.value
    merged = {**(value if isinstance(value, dict) else {}), **content}
    title = next((str(merged[k]) for k in ("headline", "title", "label", "text", "cta")
                  if isinstance(merged.get(k), str)), None)
    if title is None:
        title = value if isinstance(value, str) else variant.name or variant.key
    return {
        "title": title,
        "fields": [(k, v) for k, v in merged.items()
                   if isinstance(v, str | int | float) and str(v) != title][:4],
        "value": json.dumps(value, ensure_ascii=False) if value_type == "json"
        or not isinstance(value, str) else value,
        "content": json.dumps(content, indent=2, ensure_ascii=False) if content else "",
    }


def _warnings(answer: dict[str, Any] | None) -> list[dict[str, Any]]:
    found = []
    for warning in (answer or {}).get("warnings", []):
        found.append({**warning, "text": WARNING_TEXT.get(warning["code"], warning["code"]),
                      "last_at": datetime.fromisoformat(warning["last_at"])})
    return found


# --------------------------------------------------------------------------- the list


@require_GET
@strata_page("experiences.view")
def experience_list(request: HttpRequest) -> HttpResponse:
    actor = page_actor(request)
    account = actor.account
    status = request.GET.get("status", "")
    rows = Experience.objects.filter(account=account).prefetch_related("variants")
    if status in Experience.Status.values:
        rows = rows.filter(status=status)
    experiences = list(rows.order_by("-created_at", "-id")[:500])
    figures = results.overview(account.pk, experiences)
    counts = dict.fromkeys(Experience.Status.values, 0)
    for row in Experience.objects.filter(account=account).values_list("status", flat=True):
        counts[row] = counts.get(row, 0) + 1
    items = [{
        "exp": exp, "kind": kind_label(exp), "badge": status_badge(exp.status),
        "variants": [v.name or v.key for v in exp.variants.all()],
        "figures": figures[exp.pk],
        "rate": pct(figures[exp.pk]["rate"], 2),
    } for exp in experiences]
    return render_page(request, "experiences/list.html", {
        "items": items, "status": status, "can_edit": actor.has("experiences.edit"),
        "filters": [("", "All", sum(counts.values()))] + [
            (value, label.title(), counts.get(value, 0))
            for value, label in Experience.Status.choices],
    }, section=SECTION, title="Experiences")


# --------------------------------------------------------------------------- one experience


def _experience(request: HttpRequest, key: str) -> Experience | None:
    return (Experience.objects.filter(account=page_actor(request).account, key=key)
            .select_related("account", "winner").first())


def _not_found(request: HttpRequest, key: str) -> HttpResponse:
    return render_page(request, "cdp_site/404.html", {
        "heading": "No such experience",
        "message": f"This account has no experience “{key}”.",
        "back_url": reverse("experiences:list"), "back_label": "All experiences",
    }, section=SECTION, title="Not found", status=404)


def _chosen_phase(request: HttpRequest, exp: Experience) -> int | None:
    try:
        number = int(request.GET.get("phase", ""))
    except ValueError:
        return None
    return number if number > 0 else None


def _bandit(exp: Experience, phase: Phase | None, now: datetime) -> dict[str, Any] | None:
    """The bandit's schedule (``bandit_schedule.schedule_status``) with times as datetimes."""
    if exp.distribution != Experience.Distribution.BANDIT or phase is None:
        return None
    found = schedule_status(exp, now=now)
    when = found["next_reweight_at"]
    return {**found, "interval": found["interval_minutes"],
            "next": datetime.fromisoformat(when) if when else None}


def _actions(actor: Actor, exp: Experience) -> list[dict[str, str]]:
    if not actor.has("experiences.edit"):
        return []
    return [{"name": name, "label": ACTION_LABELS[name]}
            for name, transition in lifecycle.TRANSITIONS.items()
            if exp.status in transition.sources]


@require_GET
@strata_page("experiences.view")
def experience_detail(request: HttpRequest, key: str) -> HttpResponse:
    actor = page_actor(request)
    exp = _experience(request, key)
    if exp is None:
        return _not_found(request, key)
    now = timezone.now()
    phases = list(Phase.objects.filter(experience=exp).order_by("number"))
    wanted = _chosen_phase(request, exp) or exp.phase
    phase = next((p for p in phases if p.number == wanted), None)
    answer = results.phase_results(exp, phase.number, now=now) if phase else None
    variants = sorted(exp.variants.select_related("audience"),  # as the results: base first
                      key=lambda v: (not v.is_base, v.position, v.pk))
    goals = list(exp.experience_goals.select_related("goal").order_by("-primary", "goal__name"))
    return render_page(request, "experiences/detail.html", {
        "exp": exp, "kind": kind_label(exp), "badge": status_badge(exp.status),
        "variants": [{"variant": v, "preview": preview(v, exp.value_type)} for v in variants],
        "goals": goals,
        "phases": phases, "phase": phase,
        "answer": answer,
        "rows": table_rows(answer) if answer else [],
        "winner_text": winner_text(answer) if answer else "",
        "secondary": [g for g in goals if not g.primary],
        "warnings": _warnings(answer),
        "charts": results.history(exp, phase.number, now=now, latest=answer) if phase else None,
        "bandit": _bandit(exp, phase, now),
        "actions": _actions(actor, exp),
        "can_edit": actor.has("experiences.edit"),
        "target_audiences": list(exp.target_audiences.values_list("name", flat=True)),
        "now": now,
        **_visitor_preview(request, exp),
        "blockers": lifecycle.activation_problems(exp)
        if exp.status == Experience.Status.DRAFT else [],
    }, section=SECTION, title=exp.name)


def _visitor_preview(request: HttpRequest, exp: Experience) -> dict[str, Any]:
    """"What would this visitor see" (``?visitor=``): the decision API's answer, unwritten."""
    text = request.GET.get("visitor", "").strip()[:256]
    visitor = parse_visitor(page_actor(request).account, text)
    if visitor is None:
        return {"visitor_text": "", "seen": None}
    return {"visitor_text": text,
            "seen": would_see(page_actor(request).account, visitor, keys=[exp.key])}


# --------------------------------------------------------------------------- actions


def _refused(request: HttpRequest, exp: Experience, error: lifecycle.ExperienceError) -> None:
    """One message. A draft's blockers are listed once, each with its fix, in the page's "What
    blocks activation" card; elsewhere (resuming) the message lists them."""
    if isinstance(error, lifecycle.ActivationError) and exp.status == Experience.Status.DRAFT:
        count = len(error.problems)
        messages.error(request, f"The experience cannot be activated yet: {count} "
                       f"thing{'s' * (count > 1)} to fix, listed below.")
        return
    if isinstance(error, lifecycle.ActivationError):
        messages.error(request, "The experience cannot run as it is: "
                       + " ".join(p["message"] for p in error.problems))
        return
    messages.error(request, error.message)


def _run(request: HttpRequest, exp: Experience, action: str) -> Experience:
    actor = page_actor(request)
    if action == "complete":
        results.snapshot(exp)  # the final figures, for the charts
        return lifecycle.complete(exp, actor, winner_key=request.POST.get("winner") or None)
    handlers: dict[str, Callable[..., Experience]] = lifecycle.ACTIONS
    return handlers[action](exp, actor)


DONE = {"activate": "activated", "pause": "paused", "resume": "resumed",
        "complete": "completed"}


@require_POST
@strata_page("experiences.edit")
def experience_action(request: HttpRequest, key: str, action: str) -> HttpResponse:
    """activate / pause / resume / complete (with an optional ``winner``), then back to the
    page; a refusal is shown there and nothing changes."""
    exp = _experience(request, key)
    if exp is None:
        return _not_found(request, key)
    target = reverse("experiences:detail", args=[exp.key])
    if action not in lifecycle.ACTIONS:
        messages.error(request, f"Unknown action “{action}”.")
        return HttpResponseRedirect(target)
    try:
        done = _run(request, exp, action)
    except lifecycle.ExperienceError as error:
        _refused(request, exp, error)
        return HttpResponseRedirect(target)
    done.refresh_from_db()  # the winner, not the one cached before the change
    note = f"{done.name} {DONE[action]}."
    if action == "complete":
        note += f" Everyone now gets {done.winner.name or done.winner.key}." if done.winner \
            else " Everyone now gets the base variant."
    messages.success(request, note)
    return HttpResponseRedirect(target)


@require_POST
@strata_page("experiences.edit")
def experience_snapshot(request: HttpRequest, key: str) -> HttpResponse:
    """Take a results snapshot now (the charts otherwise move hourly)."""
    exp = _experience(request, key)
    if exp is None:
        return _not_found(request, key)
    if results.snapshot(exp) is None:
        messages.error(request, "The experience has not run yet: there is nothing to record.")
    else:
        messages.success(request, "Results recorded: the charts include this moment.")
    return HttpResponseRedirect(reverse("experiences:detail", args=[exp.key]))


@require_POST
@strata_page("experiences.edit")
def experience_reweight(request: HttpRequest, key: str) -> HttpResponse:
    """Reweight a bandit now ("reweight now"); a refusal (too few visitors yet, not running)
    is shown on the page with its reason and nothing changes."""
    exp = _experience(request, key)
    if exp is None:
        return _not_found(request, key)
    try:
        outcome = reweight_now(exp, page_actor(request))
    except lifecycle.ExperienceError as error:
        _refused(request, exp, error)
    else:
        split = ", ".join(f"{k} {pct(v)}" for k, v in outcome.weights.items())
        messages.success(request, f"Reweighted: {split}.")
    return HttpResponseRedirect(reverse("experiences:detail", args=[exp.key]))
