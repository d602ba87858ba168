"""Creating, editing and running experiences: the only writer of experiences, variants, goal
links and phases (the API, the admin, commands and the demo seed all come through here).

- A draft is freely editable; every edit is checked (``EDIT_CHECKS``) and refused whole, with
  every problem listed, when something is wrong. Nothing is half-written.
- ``activate`` checks that the experience can run (``ACTIVATION_CHECKS``: variants, base,
  weights, goal, audiences) and starts phase 1.
- The status machine is ``TRANSITIONS``: draft → active ⇄ paused → completed; anything else is
  refused with ``invalid_transition``.
- While live (active or paused) the split is locked: a change of variants, weights,
  distribution, traffic allocation or segment audiences starts a new ``Phase`` (the old one gets
  ``ended_at``; results are kept per phase). Fields clients depend on (key, type, value type,
  hash seed and version) cannot change once activated.
- ``complete`` ends the experience and, with a winner, rolls it out to everyone.
- Every change bumps ``Experience.version`` and invalidates ``experiences.config``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone

from audiences.models import Audience
from audiences.rules import RuleError, RuleSchema, validate_rule
from cdp_site import audit
from cdp_site.models import AuditEvent
from experiences import config
from experiences.models import Assignment, Experience, ExperienceGoal, Goal, Phase, Variant

if TYPE_CHECKING:

    from cdp_site.models import Account
    from cdp_site.tenancy import Actor

WEIGHT_TOLERANCE = 1e-9
KEY_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}$")
GOAL_KEY_PATTERN = re.compile(r"^[-a-zA-Z0-9_]{1,100}$")
RESERVED_KEYS = frozenset({"new"})  # /experiences/new/ is the editor

Status = Experience.Status


# --------------------------------------------------------------------------- errors


class ExperienceError(Exception):
    """A refused change: nothing was written. ``problems`` lists every reason found."""

    status = 400

    def __init__(self, code: str, message: str, *, status: int | None = None,
                 problems: list[dict[str, str]] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        if status is not None:
            self.status = status
        self.problems = problems or [{"code": code, "message": message}]

    def as_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "problems": self.problems}


def _summary(problems: list[dict[str, str]]) -> str:
    more = len(problems) - 1
    return problems[0]["message"] + (f" (and {more} more problem{'s' * (more > 1)})"
                                     if more else "")


class InvalidExperience(ExperienceError):
    """An edit that would leave the experience invalid."""

    def __init__(self, problems: list[dict[str, str]]) -> None:
        super().__init__(problems[0]["code"], _summary(problems), problems=problems)


class ActivationError(ExperienceError):
    """The experience cannot run as it is: every reason is in ``problems``."""

    def __init__(self, problems: list[dict[str, str]]) -> None:
        super().__init__("activation_refused", "The experience cannot be activated: "
                         + _summary(problems), problems=problems)


class TransitionError(ExperienceError):
    status = 409


def problem(code: str, message: str, field_path: str = "") -> dict[str, str]:
    found = {"code": code, "message": message}
    if field_path:
        found["field"] = field_path
    return found


# --------------------------------------------------------------------------- the draft state


EXPERIENCE_FIELDS = (
    "key", "name", "description", "type", "distribution", "value_type", "traffic_allocation",
    "target", "seed", "hash_version", "bandit_interval_minutes", "bandit_burn_in_hours",
)
# Fields clients or bucketing depend on: fixed once the experience has been activated.
LOCKED_WHEN_LIVE = ("key", "type", "value_type", "seed", "hash_version")
# Fields editable after completion.
EDITABLE_WHEN_COMPLETED = ("name", "description")


@dataclass
class VariantDraft:
    key: str
    uid: str = ""
    name: str = ""
    value: Any = None
    content: Any = field(default_factory=dict)
    is_base: bool = False
    weight: float | None = None
    audience: str | None = None  # slug
    priority: int = 0
    id: int | None = None


@dataclass
class Draft:
    """An experience as it would be after a change, before anything is written."""

    fields: dict[str, Any]
    variants: list[VariantDraft]
    goals: list[tuple[str, bool]]  # (goal key, primary)
    target_audiences: list[str]  # slugs

    def split(self) -> tuple[Any, ...]:
        """What the split depends on: a change of it while live starts a new phase."""
        custom = self.fields["distribution"] == Experience.Distribution.CUSTOM
        return (
            self.fields["distribution"], float(self.fields["traffic_allocation"]),
            tuple((v.key, v.is_base, v.weight if custom else None, v.audience, v.priority)
                  for v in self.variants),
        )


@dataclass
class Lookups:
    """The account's audiences and goals a draft names (by slug / key)."""

    audiences: dict[str, Audience]
    goals: dict[str, Goal]

    @classmethod
    def for_draft(cls, account_id: int, draft: Draft) -> Lookups:
        slugs = set(draft.target_audiences) | {v.audience for v in draft.variants if v.audience}
        keys = {key for key, _primary in draft.goals}
        return cls(
            audiences={a.slug: a for a in Audience.objects.filter(account_id=account_id,
                                                                  slug__in=slugs)},
            goals={g.key: g for g in Goal.objects.filter(account_id=account_id, key__in=keys)},
        )


def draft_of(exp: Experience) -> Draft:
    """The stored experience as a draft."""
    variants = [
        VariantDraft(key=v.key, uid=v.uid, name=v.name, value=v.value, content=v.content,
                     is_base=v.is_base, weight=v.weight,
                     audience=v.audience.slug if v.audience is not None else None,
                     priority=v.priority, id=v.pk)
        for v in exp.variants.select_related("audience").order_by("position", "id")
    ]
    goals = [(link.goal.key, link.primary)
             for link in exp.experience_goals.select_related("goal").order_by("-primary", "id")]
    return Draft(
        fields={name: getattr(exp, name) for name in EXPERIENCE_FIELDS},
        variants=variants, goals=goals,
        target_audiences=[a.slug for a in exp.target_audiences.order_by("slug")],
    )


def _variant_from_spec(spec: Mapping[str, Any], existing: list[VariantDraft],
                       value_type: str) -> VariantDraft:
    """A variant of an edit: matched to an existing one by uid, else by key."""
    spec = dict(spec)
    if "base" in spec:
        spec["is_base"] = spec.pop("base")
    match = next((v for v in existing if spec.get("uid") and v.uid == spec["uid"]), None) \
        or next((v for v in existing if v.key == spec.get("key")), None)
    known = {name for name in VariantDraft.__dataclass_fields__ if name != "id"}
    updates = {name: value for name, value in spec.items() if name in known}
    if match is not None:
        return replace(match, **updates)
    variant = VariantDraft(**{"key": "", **updates})
    if "value" not in spec:  # a value clients can always read
        variant.value = variant.key if value_type == Experience.ValueType.STRING else {}
    return variant


def apply_changes(draft: Draft, changes: Mapping[str, Any]) -> Draft:
    """A new draft with ``changes`` (experience fields, ``variants``, ``goals``,
    ``target_audiences``) applied."""
    fields = {**draft.fields, **{k: v for k, v in changes.items() if k in EXPERIENCE_FIELDS}}
    variants = draft.variants
    if changes.get("variants") is not None:
        variants = [_variant_from_spec(spec, draft.variants, fields["value_type"])
                    for spec in changes["variants"]]
    goals = draft.goals
    if changes.get("goals") is not None:
        goals = [(g["goal"], bool(g.get("primary"))) if isinstance(g, Mapping) else (g, False)
                 for g in changes["goals"]]
        if goals and not any(primary for _key, primary in goals) and len(goals) == 1:
            goals = [(goals[0][0], True)]  # a single goal is the primary one
    targets = draft.target_audiences
    if changes.get("target_audiences") is not None:
        targets = list(changes["target_audiences"])
    return Draft(fields=fields, variants=variants, goals=goals, target_audiences=targets)


# --------------------------------------------------------------------------- checks


Check = Callable[[Draft, Lookups], Iterable[dict[str, str]]]


def _check_key(draft: Draft, lookups: Lookups) -> Iterable[dict[str, str]]:
    key = draft.fields.get("key")
    if not isinstance(key, str) or not KEY_PATTERN.match(key):
        yield problem("invalid_key", "The key must be 1 to 100 letters, digits or _ . : - "
                      "(starting with a letter or digit).", "key")
    elif key in RESERVED_KEYS:
        yield problem("reserved_key", f"{key!r} is reserved: pick another key.", "key")
    if not str(draft.fields.get("name") or "").strip():
        yield problem("missing_name", "The experience needs a name.", "name")


def _check_choices(draft: Draft, lookups: Lookups) -> Iterable[dict[str, str]]:
    for name, choices in (("type", Experience.Type), ("distribution", Experience.Distribution),
                          ("value_type", Experience.ValueType), ("target", Experience.Target)):
        if draft.fields.get(name) not in choices.values:
            yield problem(f"invalid_{name}", f"{name} must be one of "
                          f"{', '.join(choices.values)}.", name)
    allocation = draft.fields.get("traffic_allocation")
    if isinstance(allocation, bool) or not isinstance(allocation, int | float) \
            or not math.isfinite(allocation) or not 0 < allocation <= 1:
        yield problem("invalid_traffic_allocation",
                      "Traffic allocation is a share of visitors above 0 and at most 1.",
                      "traffic_allocation")
    if draft.fields.get("hash_version") not in (1, 2):
        yield problem("invalid_hash_version", "The hash version is 1 or 2.", "hash_version")
    yield from _check_bandit_schedule(draft)


# Bandit schedule bounds: the schedule runs every 15 minutes; a week between reweightings and
# a 30-day burn-in are far past any useful bandit (and well inside the integer column).
BANDIT_INTERVAL_MINUTES = (15, 7 * 24 * 60)
BANDIT_BURN_IN_HOURS = (0, 30 * 24)


def _check_bandit_schedule(draft: Draft) -> Iterable[dict[str, str]]:
    for name, (low, high), code, text in (
        ("bandit_interval_minutes", BANDIT_INTERVAL_MINUTES, "invalid_bandit_interval",
         "Bandit weights are recomputed every {low} to {high} minutes (a week)."),
        ("bandit_burn_in_hours", BANDIT_BURN_IN_HOURS, "invalid_bandit_burn_in",
         "A bandit's burn-in is {low} to {high} hours (30 days)."),
    ):
        value = draft.fields.get(name)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            yield problem(code, text.format(low=low, high=high), name)


def _check_variant_keys(draft: Draft, lookups: Lookups) -> Iterable[dict[str, str]]:
    seen: set[str] = set()
    for i, variant in enumerate(draft.variants):
        if not isinstance(variant.key, str) or not KEY_PATTERN.match(variant.key):
            yield problem("invalid_variant_key", f"Variant {i + 1}: the key must be 1 to 100 "
                          "letters, digits or _ . : -.", f"variants[{i}].key")
        elif variant.key in seen:
            yield problem("duplicate_variant_key",
                          f"Two variants have the key {variant.key!r}: keys must be unique.",
                          f"variants[{i}].key")
        seen.add(variant.key)
    uids = [v.uid for v in draft.variants if v.uid]
    if len(uids) != len(set(uids)):
        yield problem("duplicate_variant_uid", "Two variants have the same uid.", "variants")


def _value_problem(value_type: str | None, value: Any) -> str | None:
    if value_type == Experience.ValueType.STRING:
        return None if isinstance(value, str) else "a string experience needs string values"
    if value_type == Experience.ValueType.JSON:
        return None if isinstance(value, dict | list) else \
            "a JSON experience needs JSON object or array values"
    return None


def _check_variant_values(draft: Draft, lookups: Lookups) -> Iterable[dict[str, str]]:
    value_type = draft.fields.get("value_type")
    for i, variant in enumerate(draft.variants):
        message = _value_problem(value_type, variant.value)
        if message:
            yield problem("invalid_value", f"Variant {variant.key!r}: {message}.",
                          f"variants[{i}].value")
        if not isinstance(variant.content, dict):
            yield problem("invalid_content", f"Variant {variant.key!r}: content is a JSON "
                          "object.", f"variants[{i}].content")
        weight = variant.weight
        if weight is not None and (isinstance(weight, bool) or not isinstance(weight, int | float)
                                   or not math.isfinite(weight) or not 0 <= weight <= 1):
            yield problem("invalid_weight", f"Variant {variant.key!r}: a weight is a share "
                          "from 0 to 1.", f"variants[{i}].weight")


def _check_references(draft: Draft, lookups: Lookups) -> Iterable[dict[str, str]]:
    """Audiences and goals named must exist (archived audiences count as gone)."""
    for i, variant in enumerate(draft.variants):
        found = lookups.audiences.get(variant.audience) if variant.audience else None
        if variant.audience and (found is None or found.archived):
            yield problem("unknown_audience", f"Variant {variant.key!r}: there is no audience "
                          f"{variant.audience!r}.", f"variants[{i}].audience")
    for slug in draft.target_audiences:
        found = lookups.audiences.get(slug)
        if found is None or found.archived:
            yield problem("unknown_audience", f"There is no audience {slug!r}.",
                          "target_audiences")
    for key, _primary in draft.goals:
        if key not in lookups.goals:
            yield problem("unknown_goal", f"There is no goal {key!r}.", "goals")
    keys = [key for key, _primary in draft.goals]
    if len(keys) != len(set(keys)):
        yield problem("duplicate_goal", "A goal is listed twice.", "goals")
    if sum(1 for _key, primary in draft.goals if primary) > 1:
        yield problem("several_primary_goals", "Only one goal can be the primary goal.", "goals")


def _check_base(draft: Draft, lookups: Lookups) -> Iterable[dict[str, str]]:
    bases = [v.key for v in draft.variants if v.is_base]
    if not bases:
        label = "control" if draft.fields["type"] == Experience.Type.AB else "base"
        yield problem("no_base_variant", f"One variant must be the {label} (base) variant.",
                      "variants")
    elif len(bases) > 1:
        yield problem("several_base_variants", "Only one variant can be the base variant; "
                      f"these are all marked base: {', '.join(bases)}.", "variants")


def _check_ab(draft: Draft, lookups: Lookups) -> Iterable[dict[str, str]]:
    if draft.fields["type"] != Experience.Type.AB:
        return
    if len(draft.variants) < 2:
        yield problem("too_few_variants", "An A/B test needs at least two variants.",
                      "variants")
    if draft.fields["distribution"] == Experience.Distribution.CUSTOM:
        missing = [v.key for v in draft.variants if v.weight is None]
        if missing:
            yield problem("missing_weight", "Custom weights need a weight for every variant; "
                          f"missing: {', '.join(missing)}.", "variants")
        else:
            total = sum(float(v.weight or 0) for v in draft.variants)
            if abs(total - 1.0) > WEIGHT_TOLERANCE:
                yield problem("weights_not_100", f"Custom weights must add up to 100 %; they "
                              f"add up to {total * 100:g} %.", "variants")
    if not any(primary for _key, primary in draft.goals):
        yield problem("no_primary_goal", "An A/B test needs a primary goal (the conversion "
                      "event it is judged by).", "goals")


def _check_segmented(draft: Draft, lookups: Lookups) -> Iterable[dict[str, str]]:
    if draft.fields["type"] != Experience.Type.SEGMENTED:
        return
    segments = [v for v in draft.variants if not v.is_base]
    if not segments:
        yield problem("too_few_variants", "A segmented experience needs a variant besides "
                      "the base one.", "variants")
    for i, variant in enumerate(draft.variants):
        if variant.is_base:
            continue
        if not variant.audience:
            yield problem("missing_audience", f"Variant {variant.key!r} needs an audience "
                          "(the visitors who get it).", f"variants[{i}].audience")
            continue
        found = lookups.audiences.get(variant.audience)
        if found is not None and not found.archived and not found.api_accessible:
            yield problem("audience_not_api_accessible", f"Audience {variant.audience!r} is "
                          "not API accessible, so sites cannot be told about it.",
                          f"variants[{i}].audience")


def _check_target(draft: Draft, lookups: Lookups) -> Iterable[dict[str, str]]:
    if draft.fields["target"] != Experience.Target.AUDIENCES:
        return
    if not draft.target_audiences:
        yield problem("no_target_audiences", "Selected audiences as the target group needs at "
                      "least one audience.", "target_audiences")
    for slug in draft.target_audiences:
        found = lookups.audiences.get(slug)
        if found is not None and not found.archived and not found.api_accessible:
            yield problem("audience_not_api_accessible", f"Audience {slug!r} is not API "
                          "accessible, so sites cannot be told about it.", "target_audiences")


# Checked on every edit (a draft may be incomplete, never malformed) …
EDIT_CHECKS: list[Check] = [_check_key, _check_choices, _check_variant_keys,
                            _check_variant_values, _check_references]
# … and before it runs (activation, and every edit while live).
ACTIVATION_CHECKS: list[Check] = [*EDIT_CHECKS, _check_base, _check_ab, _check_segmented,
                                  _check_target]


def _problems(draft: Draft, lookups: Lookups, checks: list[Check]) -> list[dict[str, str]]:
    return [found for check in checks for found in check(draft, lookups)]


def activation_problems(exp: Experience) -> list[dict[str, str]]:
    """Every reason the experience cannot run as stored (empty: it can)."""
    draft = draft_of(exp)
    return _problems(draft, Lookups.for_draft(exp.account_id, draft), ACTIVATION_CHECKS)


# --------------------------------------------------------------------------- writing


def experience_uid(n: int) -> str:
    """The n-th short uid, Personalize style: a … z, aa, ab, …"""
    letters = ""
    n += 1
    while n:
        n, rest = divmod(n - 1, 26)
        letters = chr(ord("a") + rest) + letters
    return letters


def _next_experience_uid(account_id: int) -> str:
    taken = set(Experience.objects.filter(account_id=account_id).values_list("uid", flat=True))
    n = len(taken)
    while experience_uid(n) in taken:
        n += 1
    return experience_uid(n)


def _changed(exp: Experience) -> None:
    """Bump the version and let this process's decision config see the change."""
    exp.version += 1
    exp.updated_at = timezone.now()
    account_id = exp.account_id
    config.invalidate(account_id)
    transaction.on_commit(lambda: config.invalidate(account_id))


def _write_variants(exp: Experience, draft: Draft, lookups: Lookups) -> None:
    stored = {v.pk: v for v in exp.variants.all()}
    kept = {v.id for v in draft.variants if v.id is not None}
    removed = [pk for pk in stored if pk not in kept]
    if removed and exp.status != Status.DRAFT:
        used = Assignment.objects.filter(variant_id__in=removed).values_list(
            "variant__key", flat=True).distinct()
        if used:
            raise ExperienceError(
                "variant_has_visitors", f"Variant(s) {', '.join(sorted(used))} already have "
                "visitors and cannot be removed; set their weight to 0 instead.", status=409)
    Variant.objects.filter(pk__in=removed).delete()
    # Keys and uids move in two steps, so a swap never meets the unique constraints.
    moving = [v.id for v in draft.variants if v.id is not None
              and (stored[v.id].key != v.key or (v.uid and stored[v.id].uid != v.uid))]
    for variant_id in moving:
        Variant.objects.filter(pk=variant_id).update(key=f"~{variant_id}", uid=f"~{variant_id}")
    numbers = [int(v.uid) for v in draft.variants if v.uid.isdigit()]
    next_uid = max([*numbers, *(int(s.uid) for s in stored.values() if s.uid.isdigit()), -1]) + 1
    for position, spec in enumerate(draft.variants):
        if not spec.uid:
            spec.uid, next_uid = str(next_uid), next_uid + 1
        audience = lookups.audiences.get(spec.audience) if spec.audience else None
        values = {"key": spec.key, "uid": spec.uid, "name": spec.name or "", "value": spec.value,
                  "content": spec.content, "is_base": bool(spec.is_base),
                  "weight": spec.weight, "audience": audience, "priority": spec.priority or 0,
                  "position": position}
        if spec.id is None:
            spec.id = Variant.objects.create(account_id=exp.account_id, experience=exp,
                                             **values).pk
        else:
            Variant.objects.filter(pk=spec.id).update(**values)


def _write_goals(exp: Experience, draft: Draft, lookups: Lookups) -> None:
    ExperienceGoal.objects.filter(experience=exp).delete()
    ExperienceGoal.objects.bulk_create([
        ExperienceGoal(account_id=exp.account_id, experience=exp, goal=lookups.goals[key],
                       primary=primary)
        for key, primary in draft.goals
    ])


def _write(exp: Experience, draft: Draft, lookups: Lookups, changes: Mapping[str, Any]) -> None:
    for name in EXPERIENCE_FIELDS:
        setattr(exp, name, draft.fields[name])
    exp.save()
    if changes.get("variants") is not None:
        _write_variants(exp, draft, lookups)
    if changes.get("goals") is not None:
        _write_goals(exp, draft, lookups)
    if changes.get("target_audiences") is not None:
        exp.target_audiences.set([lookups.audiences[slug] for slug in draft.target_audiences])


def _check_key_free(account_id: int, key: str, exclude: int | None = None) -> None:
    others = Experience.objects.filter(account_id=account_id, key=key)
    if exclude is not None:
        others = others.exclude(pk=exclude)
    if others.exists():
        raise ExperienceError("duplicate_key", f"There is already an experience {key!r}.",
                              status=409)


def _defaults(account: Account) -> dict[str, Any]:
    blank = Experience(account=account)
    return {name: getattr(blank, name) for name in EXPERIENCE_FIELDS}


@transaction.atomic
def create_experience(account: Account, actor: Actor | None = None, **changes: Any
                      ) -> Experience:
    """A new draft. ``changes``: experience fields, ``variants`` (dicts: key, name, value,
    content, base, weight, audience slug, priority), ``goals`` ([{"goal": key, "primary"}] or
    keys), ``target_audiences`` (slugs). Refused whole with every problem."""
    draft = apply_changes(Draft(fields=_defaults(account), variants=[], goals=[],
                                target_audiences=[]), changes)
    lookups = Lookups.for_draft(account.pk, draft)
    problems = _problems(draft, lookups, EDIT_CHECKS)
    if problems:
        raise InvalidExperience(problems)
    _check_key_free(account.pk, draft.fields["key"])
    for _attempt in range(5):  # two creators may pick the same uid: take the next one
        try:
            with transaction.atomic():
                exp = Experience(account=account, uid=_next_experience_uid(account.pk),
                                 created_by=_user(actor))
                _write(exp, draft, lookups, {"variants": [], "goals": [],
                                             "target_audiences": [], **changes})
                break
        except IntegrityError:
            _check_key_free(account.pk, draft.fields["key"])
    else:  # pragma: no cover - five lost races in a row
        raise ExperienceError("busy", "Could not pick a short uid; try again.", status=409)
    _changed(exp)
    exp.save(update_fields=["version", "updated_at"])
    audit.record_change(actor, AuditEvent.Action.EXPERIENCE_CREATED, exp,
                        {"uid": exp.uid, "status": exp.status, **_draft_summary(draft)})
    return exp


def _user(actor: Actor | None) -> Any:
    return actor.user if actor is not None and actor.user is not None and actor.user.pk \
        else None


# --------------------------------------------------------------------------- the audit log


def _variant_summary(variant: VariantDraft) -> dict[str, Any]:
    return {"key": variant.key, "name": variant.name, "value": variant.value,
            "content": variant.content, "base": bool(variant.is_base),
            "weight": variant.weight, "audience": variant.audience,
            "priority": variant.priority or 0}


def _draft_summary(draft: Draft) -> dict[str, Any]:
    return {**draft.fields, "variants": [_variant_summary(v) for v in draft.variants],
            "goals": [[key, primary] for key, primary in draft.goals],
            "target_audiences": sorted(draft.target_audiences)}


def draft_diff(before: Draft, after: Draft) -> dict[str, list[Any]]:
    """``{what: [old, new]}`` for each field, the variants, goals and target audiences that
    differ between two drafts (experience configuration only: no profile data)."""
    found: dict[str, list[Any]] = {
        name: [before.fields[name], after.fields[name]] for name in EXPERIENCE_FIELDS
        if before.fields[name] != after.fields[name]}
    old_variants = [_variant_summary(v) for v in before.variants]
    new_variants = [_variant_summary(v) for v in after.variants]
    if old_variants != new_variants:
        found["variants"] = [old_variants, new_variants]
    old_goals = [[key, primary] for key, primary in before.goals]
    new_goals = [[key, primary] for key, primary in after.goals]
    if old_goals != new_goals:
        found["goals"] = [old_goals, new_goals]
    if sorted(before.target_audiences) != sorted(after.target_audiences):
        found["target_audiences"] = [sorted(before.target_audiences),
                                     sorted(after.target_audiences)]
    return found


def _locked(exp: Experience) -> Experience:
    """The experience's row, locked for this transaction (edits of one run one at a time)."""
    return Experience.objects.select_for_update().get(pk=exp.pk)


def _refresh_caller(caller: Experience, fresh: Experience) -> Experience:
    """The caller's object becomes the fresh row: its field values, and no related object
    cached from before the change (``__dict__`` bypasses the descriptors that would drop a
    cached ``winner`` when ``winner_id`` changes, and prefetched variants, goals, phases or
    target audiences would be the old ones). Related data is read again on first use."""
    if caller is fresh:
        return caller
    caller.__dict__.update({k: v for k, v in fresh.__dict__.items()
                            if k not in ("_state", "_prefetched_objects_cache")})
    caller.__dict__.pop("_prefetched_objects_cache", None)
    caller._state.fields_cache = {}
    caller._state.adding = False
    caller._state.db = fresh._state.db
    return caller


@transaction.atomic
def update_experience(exp: Experience, actor: Actor | None = None, **changes: Any
                      ) -> Experience:
    """Edit an experience (same ``changes`` as ``create_experience``; ``reason`` names a new
    phase). While live the result must still be runnable, and a changed split starts a new
    phase; once completed only the name and description change."""
    reason = changes.pop("reason", "") or ""
    current = _locked(exp)
    before = draft_of(current)
    draft = apply_changes(before, changes)
    _refuse_locked_fields(current, before, draft, changes)
    lookups = Lookups.for_draft(current.account_id, draft)
    live = current.status in (Status.ACTIVE, Status.PAUSED)
    problems = _problems(draft, lookups, ACTIVATION_CHECKS if live else EDIT_CHECKS)
    if problems:
        raise InvalidExperience(problems)
    if draft.fields["key"] != before.fields["key"]:
        _check_key_free(current.account_id, draft.fields["key"], exclude=current.pk)
    _write(current, draft, lookups, changes)
    diff = draft_diff(before, draft)
    if live and draft.split() != before.split():
        phase = _start_phase(current, reason or _phase_reason(before, draft))
        diff["phase"] = [phase.number - 1, phase.number]
        diff["phase_reason"] = [None, phase.reason]
    _changed(current)
    current.save()
    if diff:  # an edit that changed nothing is not an event
        audit.record_change(actor, AuditEvent.Action.EXPERIENCE_UPDATED, current, diff)
    return _refresh_caller(exp, current)


def _refuse_locked_fields(exp: Experience, before: Draft, after: Draft,
                          changes: Mapping[str, Any]) -> None:
    if exp.status == Status.DRAFT:
        return
    if exp.status == Status.COMPLETED:
        changed = [name for name in (*EXPERIENCE_FIELDS, "variants", "goals", "target_audiences")
                   if name in changes and name not in EDITABLE_WHEN_COMPLETED
                   and _field_value(before, name) != _field_value(after, name)]
        if changed:
            raise ExperienceError("experience_completed", "A completed experience keeps its "
                                  f"configuration; only its name and description change "
                                  f"(refused: {', '.join(changed)}).", status=409)
        return
    changed = [name for name in LOCKED_WHEN_LIVE
               if before.fields[name] != after.fields[name]]
    if changed:
        raise ExperienceError("locked_field", f"{', '.join(changed)} cannot change once the "
                              "experience has been activated (sites and bucketing rely on it).",
                              status=409)


def _field_value(draft: Draft, name: str) -> Any:
    if name in draft.fields:
        return draft.fields[name]
    return getattr(draft, name)


def _phase_reason(before: Draft, after: Draft) -> str:
    if [v.key for v in before.variants] != [v.key for v in after.variants]:
        return "variants changed"
    if before.fields["traffic_allocation"] != after.fields["traffic_allocation"]:
        return "traffic allocation changed"
    if before.fields["distribution"] != after.fields["distribution"]:
        return "distribution changed"
    return "split changed"


def phase_weights(exp: Experience) -> dict[str, float]:
    """The split a new phase starts with, by variant key: custom weights as set, an equal
    split otherwise (bandits start equal); none for segmented experiences."""
    variants = list(exp.variants.order_by("position", "id"))
    if exp.type == Experience.Type.SEGMENTED or not variants:
        return {}
    if exp.distribution == Experience.Distribution.CUSTOM:
        return {v.key: float(v.weight or 0.0) for v in variants}
    return {v.key: 1 / len(variants) for v in variants}


def _start_phase(exp: Experience, reason: str) -> Phase:
    now = timezone.now()
    Phase.objects.filter(experience=exp, ended_at__isnull=True).update(ended_at=now)
    number = (Phase.objects.filter(experience=exp).aggregate(n=Max("number"))["n"] or 0) + 1
    phase = Phase.objects.create(
        account_id=exp.account_id, experience=exp, number=number, started_at=now,
        weights=phase_weights(exp), traffic_allocation=exp.traffic_allocation,
        variant_keys=list(exp.variants.order_by("position", "id").values_list("key", flat=True)),
        reason=reason[:200],
    )
    exp.phase = number
    return phase


def update_split(exp: Experience, actor: Actor | None = None, *,
                 weights: Mapping[str, float] | None = None,
                 traffic_allocation: float | None = None, reason: str = "") -> Experience:
    """Change custom weights (by variant key or uid: the distribution becomes custom) and/or
    the traffic allocation; while live this starts a new phase."""
    changes: dict[str, Any] = {"reason": reason}
    if weights is not None:
        variants = list(exp.variants.order_by("position", "id"))
        unknown = set(weights) - {v.key for v in variants} - {v.uid for v in variants}
        if unknown:
            raise InvalidExperience([problem("unknown_variant", "No variant "
                                             f"{', '.join(sorted(unknown))}.", "weights")])
        changes["distribution"] = Experience.Distribution.CUSTOM
        changes["variants"] = [
            {"uid": v.uid, "key": v.key,
             "weight": weights.get(v.key, weights.get(v.uid))}
            for v in variants
        ]
    if traffic_allocation is not None:
        changes["traffic_allocation"] = traffic_allocation
    return update_experience(exp, actor, **changes)


@transaction.atomic
def delete_experience(exp: Experience, actor: Actor | None = None) -> None:
    """Delete a draft, paused or completed experience (an active one must be paused first),
    with its assignments and results."""
    current = _locked(exp)
    if current.status == Status.ACTIVE:
        raise TransitionError("experience_active", "An active experience cannot be deleted; "
                              "pause or complete it first.")
    account_id = current.account_id
    audit.record_change(actor, AuditEvent.Action.EXPERIENCE_DELETED, current,
                        {"key": current.key, "status": current.status, "phase": current.phase})
    current.delete()
    config.invalidate(account_id)
    transaction.on_commit(lambda: config.invalidate(account_id))


@dataclass(frozen=True)
class ChangeCheck:
    """What saving ``changes`` would do, found without writing: ``refused`` lists what would
    refuse the save itself; ``blockers`` what would keep it from running (activation's
    checks); ``new_phase`` the reason a live experience would start phase ``next_phase``
    (empty when the split stays)."""

    refused: list[dict[str, str]]
    blockers: list[dict[str, str]]
    new_phase: str = ""
    next_phase: int = 0


def check_changes(account: Account, exp: Experience | None, changes: Mapping[str, Any]
                  ) -> ChangeCheck:
    """The editor's dry run of ``create_experience`` (``exp`` None) or ``update_experience``."""
    changes = {k: v for k, v in changes.items() if k != "reason"}
    before = draft_of(exp) if exp is not None else Draft(
        fields=_defaults(account), variants=[], goals=[], target_audiences=[])
    draft = apply_changes(before, changes)
    lookups = Lookups.for_draft(account.pk, draft)
    refused = _problems(draft, lookups, EDIT_CHECKS)
    blockers = _problems(draft, lookups, ACTIVATION_CHECKS[len(EDIT_CHECKS):])
    live = exp is not None and exp.status in (Status.ACTIVE, Status.PAUSED)
    if live:  # while live the experience must stay runnable: a blocker refuses the save
        refused, blockers = refused + blockers, []
    try:
        if exp is not None:
            _refuse_locked_fields(exp, before, draft, changes)
        if draft.fields["key"] != before.fields["key"] or exp is None:
            _check_key_free(account.pk, str(draft.fields["key"]),
                            exclude=exp.pk if exp is not None else None)
    except ExperienceError as error:
        refused = [*refused, *error.problems]
    if exp is None or not live or draft.split() == before.split():
        return ChangeCheck(refused, blockers)
    return ChangeCheck(refused, blockers, _phase_reason(before, draft), exp.phase + 1)


# --------------------------------------------------------------------------- the status machine


@dataclass(frozen=True)
class Transition:
    sources: frozenset[str]
    target: str


TRANSITIONS: dict[str, Transition] = {
    "activate": Transition(frozenset({Status.DRAFT}), Status.ACTIVE),
    "pause": Transition(frozenset({Status.ACTIVE}), Status.PAUSED),
    "resume": Transition(frozenset({Status.PAUSED}), Status.ACTIVE),
    "complete": Transition(frozenset({Status.ACTIVE, Status.PAUSED}), Status.COMPLETED),
}


def _transition(exp: Experience, action: str) -> tuple[Experience, str]:
    """The locked row, once the status machine allows ``action`` from its status, and that
    status (the row has the new one)."""
    current = _locked(exp)
    transition = TRANSITIONS[action]
    if current.status not in transition.sources:
        allowed = ", ".join(sorted(name for name, t in TRANSITIONS.items()
                                   if current.status in t.sources)) or "nothing"
        raise TransitionError("invalid_transition", f"Cannot {action} an experience that is "
                              f"{current.status} (it can: {allowed}).")
    before = current.status
    current.status = transition.target
    return current, before


@transaction.atomic
def activate(exp: Experience, actor: Actor | None = None) -> Experience:
    """Check that the draft can run, then start phase 1 (raises ActivationError listing every
    problem)."""
    current, before = _transition(exp, "activate")
    problems = activation_problems(current)
    if problems:
        raise ActivationError(problems)
    current.activated_at = timezone.now()
    phase = _start_phase(current, "activated")
    _changed(current)
    current.save()
    audit.record_change(actor, AuditEvent.Action.EXPERIENCE_ACTIVATED, current,
                        {"status": [before, current.status], "phase": [0, phase.number]})
    return _refresh_caller(exp, current)


@transaction.atomic
def pause(exp: Experience, actor: Actor | None = None) -> Experience:
    """Everyone gets the base variant until it resumes; assignments and the phase are kept."""
    current, before = _transition(exp, "pause")
    _changed(current)
    current.save()
    audit.record_change(actor, AuditEvent.Action.EXPERIENCE_PAUSED, current,
                        {"status": [before, current.status]})
    return _refresh_caller(exp, current)


@transaction.atomic
def resume(exp: Experience, actor: Actor | None = None) -> Experience:
    """Back to the split (the same phase, unless the split changed while paused)."""
    current, before = _transition(exp, "resume")
    problems = activation_problems(current)  # audiences may have changed meanwhile
    if problems:
        raise ActivationError(problems)
    _changed(current)
    current.save()
    audit.record_change(actor, AuditEvent.Action.EXPERIENCE_RESUMED, current,
                        {"status": [before, current.status]})
    return _refresh_caller(exp, current)


@transaction.atomic
def complete(exp: Experience, actor: Actor | None = None, winner_key: str | None = None
             ) -> Experience:
    """End the experience; with a winner (key or uid) everyone gets it from now on, else the
    base variant. The current phase ends."""
    current, before = _transition(exp, "complete")
    winner = None
    if winner_key:
        winner = Variant.objects.filter(experience=current, key=winner_key).first() \
            or Variant.objects.filter(experience=current, uid=winner_key).first()
        if winner is None:
            raise ExperienceError("unknown_variant", f"The experience has no variant "
                                  f"{winner_key!r} to roll out.")
    now = timezone.now()
    current.winner = winner
    current.completed_at = now
    Phase.objects.filter(experience=current, ended_at__isnull=True).update(ended_at=now)
    _changed(current)
    current.save()
    audit.record_change(actor, AuditEvent.Action.EXPERIENCE_COMPLETED, current,
                        {"status": [before, current.status],
                         "winner": winner.key if winner is not None else None})
    return _refresh_caller(exp, current)


ACTIONS: dict[str, Callable[..., Experience]] = {
    "activate": activate, "pause": pause, "resume": resume, "complete": complete,
}


# --------------------------------------------------------------------------- goals


GOAL_FIELDS = ("key", "name", "description", "event", "where", "stream")


def _goal_problems(values: Mapping[str, Any]) -> list[dict[str, str]]:
    found = []
    if not isinstance(values.get("key"), str) or not GOAL_KEY_PATTERN.match(values["key"]):
        found.append(problem("invalid_key", "The goal key is 1 to 100 letters, digits, _ or -.",
                             "key"))
    if not str(values.get("name") or "").strip():
        found.append(problem("missing_name", "The goal needs a name.", "name"))
    event = values.get("event")
    if not isinstance(event, str) or not event.strip():
        found.append(problem("missing_event", "The goal needs an event name.", "event"))
    else:
        try:  # the audience rules' ``where`` shape: [{property, op, value[, type]}]
            validate_rule({"event": event, "where": values.get("where")}, RuleSchema(fields={}))
        except RuleError as error:
            found += [problem("invalid_where", f"{p.path.replace('$', 'where')}: {p.message}",
                              "where") for p in error.problems]
    return found


def _touch_goal_experiences(goal: Goal) -> None:
    """Experiences measuring this goal carry it in their config: bump them."""
    for exp in Experience.objects.select_for_update().filter(experience_goals__goal=goal):
        _changed(exp)
        exp.save(update_fields=["version", "updated_at"])


@transaction.atomic
def create_goal(account: Account, actor: Actor | None = None, **values: Any) -> Goal:
    values = {"description": "", "where": [], "stream": "", **values}
    values["name"] = values.get("name") or values.get("key") or ""
    problems = _goal_problems(values)
    if problems:
        raise InvalidExperience(problems)
    if Goal.objects.filter(account=account, key=values["key"]).exists():
        raise ExperienceError("duplicate_key", f"There is already a goal {values['key']!r}.",
                              status=409)
    goal = Goal.objects.create(account=account,
                               **{k: v for k, v in values.items() if k in GOAL_FIELDS})
    audit.record_change(actor, AuditEvent.Action.GOAL_CREATED, goal,
                        {name: getattr(goal, name) for name in GOAL_FIELDS})
    return goal


@transaction.atomic
def update_goal(goal: Goal, actor: Actor | None = None, **values: Any) -> Goal:
    merged = {**{name: getattr(goal, name) for name in GOAL_FIELDS},
              **{k: v for k, v in values.items() if k in GOAL_FIELDS}}
    problems = _goal_problems(merged)
    if problems:
        raise InvalidExperience(problems)
    if merged["key"] != goal.key and Goal.objects.filter(
            account_id=goal.account_id, key=merged["key"]).exists():
        raise ExperienceError("duplicate_key", f"There is already a goal {merged['key']!r}.",
                              status=409)
    diff = {name: [getattr(goal, name), value] for name, value in merged.items()
            if getattr(goal, name) != value}
    for name, value in merged.items():
        setattr(goal, name, value)
    goal.updated_at = timezone.now()
    goal.save()
    _touch_goal_experiences(goal)
    if diff:
        audit.record_change(actor, AuditEvent.Action.GOAL_UPDATED, goal, diff)
    return goal


@transaction.atomic
def delete_goal(goal: Goal, actor: Actor | None = None) -> None:
    used = list(Experience.objects.filter(experience_goals__goal=goal)
                .values_list("key", flat=True))
    if used:
        raise ExperienceError("goal_in_use", f"Goal {goal.key!r} is measured by "
                              f"{', '.join(sorted(used))}; remove it from them first.",
                              status=409)
    audit.record_change(actor, AuditEvent.Action.GOAL_DELETED, goal, {"key": goal.key,
                        "event": goal.event})
    goal.delete()


def audience_users(audience: Audience) -> list[str]:
    """The experiences that use an audience (target it, or give a variant to it): an
    ``STRATA_AUDIENCE_USERS_HOOKS`` entry, so audiences can refuse to rename or delete an
    audience in use without importing experiences."""
    keys = set(Experience.objects.filter(account_id=audience.account_id,
                                         target_audiences=audience)
               .values_list("key", flat=True))
    keys |= set(Variant.objects.filter(account_id=audience.account_id, audience=audience)
                .values_list("experience__key", flat=True))
    return [f"experience {key}" for key in sorted(keys)]
