"""What a visitor would see: the decision API's own answer (``experiences.decide``, with
``store=False``: no assignment is written), put in a marketer's words, and what a profile
already got (its assignments, impressions and conversions).

A visitor is named as a site names them: a cookie uid, an identifier (``email=ada@x.org``)
or, from the pages, a profile (``#123``). A profile is asked about with its latest cookie uid
(the key sites bucket by) and one of its identifiers, so the answer is the one its browser
would get.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db.models import Q

from experiences.config import active_config
from experiences.decide import Decision, decide_with_config
from experiences.models import Assignment, Conversion, Experience, Impression
from profiles.models import Identifier
from profiles.selectors import profile_by_id, profile_by_identifier

if TYPE_CHECKING:
    from cdp_site.models import Account
    from profiles.models import Profile

# detail -> (label, sentence); the label is the spec's kind of reason.
REASONS: dict[str, tuple[str, str]] = {
    "assigned": ("Split", "The split assigns this variant (stored at the first real decision)."),
    "sticky": ("Split", "Already assigned this variant: it sticks."),
    "not_targeted": ("Not eligible", "In none of the target audiences: gets the base."),
    "not_in_traffic": ("Not eligible", "Outside the traffic allocation: gets the base."),
    "no_segment": ("Not eligible", "In no variant's audience: gets the base."),
    "consent_withheld": ("Consent withheld", "Withheld personalization consent: gets the "
                                             "base, nothing is stored."),
    "paused": ("Paused", "Paused: everyone gets the base."),
    "rollout": ("Rolled out", "Completed: everyone gets the winner."),
    "completed": ("Completed", "Completed without a winner: everyone gets the base."),
    "no_variant": ("No variant", "The experience has no base variant to serve."),
}


@dataclass(frozen=True)
class Visitor:
    """Whom to ask about: the uid sites send, identifiers, and the profile when known."""

    uid: str
    identifiers: dict[str, str]
    profile: Profile | None = None
    note: str = ""


def uid_field() -> str:
    return str(getattr(settings, "STRATA_VISITOR_IDENTIFIER_FIELD", "_uid"))


def visitor_of_profile(profile: Profile) -> Visitor:
    """The profile's latest cookie uid and its most recent other identifier."""
    rows = list(Identifier.objects.filter(profile=profile, active=True)
                .order_by("-last_seen", "-id").values_list("field", "value")[:50])
    uids = [value for name, value in rows if name == uid_field()]
    others = [(name, value) for name, value in rows if name != uid_field()]
    identifiers = dict(others[:1])
    if uids:
        return Visitor(uids[0], identifiers, profile)
    if others:
        return Visitor(others[0][1], identifiers, profile,
                       note=f"No cookie uid: bucketed by its {others[0][0]}.")
    return Visitor(f"profile-{profile.pk}", {}, profile, note="No identifier to look it up by.")


def parse_visitor(account: Account, text: str) -> Visitor | None:
    """``#123`` (a profile), ``field=value`` (an identifier) or a cookie uid; None if blank."""
    text = text.strip()[:256]
    if not text:
        return None
    if text.startswith("#") and text[1:].isdigit():
        profile = profile_by_id(account, int(text[1:]))
        return visitor_of_profile(profile) if profile is not None else Visitor(
            text, {}, note=f"This account has no profile {text}.")
    name, sep, value = text.partition("=")
    if sep and name.strip() and value.strip():
        name, value = name.strip(), value.strip()
        profile = profile_by_identifier(account, name, value)
        if profile is None:
            return Visitor(value, {name: value}, note=f"No profile has {name} {value!r}.")
        found = visitor_of_profile(profile)
        return Visitor(found.uid, {name: value}, profile, found.note)
    return Visitor(text, {})


def explain(decision: Decision) -> dict[str, Any]:
    detail = decision.detail
    if detail.startswith("audience:"):
        label, text = "Targeting match", f"In audience {detail.split(':', 1)[1]}: gets its variant."
    else:
        label, text = REASONS.get(detail, (decision.reason.title(), detail))
    return {"key": decision.experience_key, "variant": decision.variant_key, "label": label,
            "text": text, "detail": detail, "in_experiment": decision.in_experiment}


def would_see(account: Account, visitor: Visitor, keys: list[str] | None = None
              ) -> dict[str, Any]:
    """What the decision API would answer this visitor now, writing nothing. Drafts are
    not served: they are listed as such when asked about."""
    config = active_config(account.pk)
    answer = decide_with_config(config, visitor.uid, identifiers=visitor.identifiers or None,
                                keys=keys, store=False)
    rows = [explain(d) for d in answer.decisions]
    names = dict(Experience.objects.filter(account=account).values_list("key", "name"))
    for row in rows:
        row["name"] = names.get(row["key"], row["key"])
    for key in answer.missing:
        if key in config.draft_keys:
            rows.append({"key": key, "name": names.get(key, key), "variant": None,
                         "label": "Draft", "text": "A draft is served to no one until it is "
                         "activated.", "detail": "draft", "in_experiment": False})
    return {"visitor": visitor, "profile_id": answer.profile_id, "audiences": answer.audiences,
            "consent_withheld": answer.consent_withheld, "rows": rows}


def profile_experiences(account: Account, profile: Profile) -> list[dict[str, Any]]:
    """The experiences and variants a profile got: its assignments (by profile or one of its
    cookie uids), with the impressions and conversions counted for it."""
    uids = list(Identifier.objects.filter(profile=profile, field=uid_field())
                .values_list("value", flat=True)[:200])
    whose = Q(profile_id=profile.pk) | Q(visitor__in=uids)
    assignments = (Assignment.objects.filter(whose, account_id=account.pk)
                   .select_related("experience", "variant").order_by("-assigned_at")[:200])
    seen = {(row.experience_id, row.variant_id): row for row in
            Impression.objects.filter(whose, account_id=account.pk)
            .select_related("experience", "variant")[:200]}
    converted: dict[int, int] = {}
    for conversion in Conversion.objects.filter(Q(visitor__in=uids), account_id=account.pk):
        converted[conversion.experience_id] = (converted.get(conversion.experience_id, 0)
                                               + conversion.count)
    got = []
    listed: set[int] = set()
    for row in assignments:
        if row.experience_id in listed:
            continue
        listed.add(row.experience_id)
        impression = seen.get((row.experience_id, row.variant_id))
        got.append({"experience": row.experience, "variant": row.variant, "phase": row.phase,
                    "assigned_at": row.assigned_at, "visitor": row.visitor,
                    "impressions": impression.count if impression else 0,
                    "conversions": converted.get(row.experience_id, 0)})
    for (experience_id, _variant_id), impression in seen.items():
        if experience_id not in listed:  # segmented experiences store no assignment
            listed.add(experience_id)
            got.append({"experience": impression.experience, "variant": impression.variant,
                        "phase": impression.phase, "assigned_at": impression.first_at,
                        "visitor": impression.visitor, "impressions": impression.count,
                        "conversions": converted.get(experience_id, 0)})
    return got
