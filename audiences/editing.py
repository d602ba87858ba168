"""Creating, editing and deleting audiences (the API and the builder pages call these).

A rule comes as JSON or as FilterQL text; it is validated against the account's live schema
and audiences (no cycle) before anything is saved. A rule change bumps ``version`` and starts
a computation in the background. An audience another audience includes or excludes, or an
experience targets or places a variant on, cannot be deleted (``audience_in_use``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from django.db import transaction
from django.utils import timezone

from audiences import membership
from audiences.filterql import FilterSyntaxError, parse_filter, to_text
from audiences.models import Audience
from audiences.rules import RuleError, TextProblem
from cdp_site import audit
from cdp_site.hooks import hooks
from cdp_site.models import Account, AuditEvent
from cdp_site.slugs import generated_slug, slug_from

if TYPE_CHECKING:
    from cdp_site.tenancy import Actor

# Slugs the API routes use for other things.
RESERVED_SLUGS = frozenset({"validate", "for-profile"})
EDITABLE = ("name", "description", "api_accessible", "archived")


@dataclass
class AudienceError(Exception):
    """A refusal other than a bad rule: ``code``, ``message``, HTTP ``status``."""

    code: str
    message: str
    status: int = 400
    details: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return self.message


def rule_from_input(rule: Any = None, text: str | None = None) -> dict[str, Any]:
    """The rule JSON from either form (``text`` wins when both are given). A text syntax
    error is a RuleError whose problem carries the line and column."""
    if text is not None:
        if not isinstance(text, str) or not text.strip():
            raise RuleError([TextProblem("$", "syntax", "text is empty", 1, 1)])
        try:
            return parse_filter(text)
        except FilterSyntaxError as exc:
            raise RuleError([TextProblem("$", "syntax", str(exc), exc.line, exc.column)]
                            ) from None
    if rule is None:
        raise RuleError([TextProblem("$", "missing", "give a rule (JSON) or its text")])
    return rule


def rule_text(rule: Any) -> str | None:
    """The FilterQL text of a rule, or None when it has none."""
    try:
        return to_text(rule)
    except (ValueError, KeyError, TypeError, IndexError):
        return None


def _user(actor: Actor | None) -> Any:
    user = getattr(actor, "user", None)
    return user if user is not None and user.pk else None


def _new_slug(slug: str, name: str) -> str:
    """The slug a new audience asks for: the typed slug's, else the name's; a name without a
    letter or digit (only emoji) gets a generated one, a typed slug without one is refused."""
    made = slug_from(slug or name)
    if made or slug.strip():
        return made
    return generated_slug("audience") if name.strip() else ""


def _free_slug(account: Account, wanted: str) -> str:
    if not wanted:
        raise AudienceError("invalid_slug", "The audience needs a name or a slug with a "
                            "letter or digit.")
    if wanted in RESERVED_SLUGS:
        raise AudienceError("invalid_slug", f"{wanted!r} is reserved; choose another slug.")
    if Audience.objects.filter(account=account, slug=wanted).exists():
        raise AudienceError("slug_taken", f"An audience with slug {wanted!r} exists.", 409)
    return wanted


@transaction.atomic
def create_audience(account: Account, actor: Actor | None, *, name: str, slug: str = "",
                    description: str = "", api_accessible: bool = False, rule: Any = None,
                    text: str | None = None, compute: bool = True) -> Audience:
    """Validate and save a new audience, then compute it in the background."""
    parsed = rule_from_input(rule, text)
    slug = _free_slug(account, _new_slug(slug, name))
    membership.check_rule(account, parsed, slug=slug, actor=actor)
    now = timezone.now()
    audience = Audience(account=account, slug=slug, name=name, description=description,
                        api_accessible=api_accessible, rule=parsed, created_by=_user(actor),
                        created_at=now, updated_at=now)
    audience.save()
    audit.record_change(actor, AuditEvent.Action.AUDIENCE_CREATED, audience, {"slug": slug,
                        "rule": parsed})
    if compute:
        membership.start_compute(audience)
    return audience


def users_of(audience: Audience) -> list[str]:
    """What uses the audience: other audiences' rules, and what the apps downstream name
    (``settings.STRATA_AUDIENCE_USERS_HOOKS``: experiences that target it or its variants)."""
    found = [f"audience {slug}" for slug in Audience.objects.filter(
        account_id=audience.account_id, depends_on__contains=[f"audience:{audience.slug}"])
        .exclude(pk=audience.pk).values_list("slug", flat=True)]
    for hook in hooks("STRATA_AUDIENCE_USERS_HOOKS"):
        found += hook(audience)
    return found


@transaction.atomic
def update_audience(audience: Audience, actor: Actor | None, *, rule: Any = None,
                    text: str | None = None, slug: str | None = None, compute: bool = True,
                    **changes: Any) -> Audience:
    """Edit an audience. A new rule is validated, bumps the version and recomputes; a new
    slug is refused while something uses the old one."""
    audience = Audience.objects.select_for_update().get(pk=audience.pk)
    unknown = set(changes) - set(EDITABLE)
    if unknown:
        raise AudienceError("invalid", f"cannot change {', '.join(sorted(unknown))}")
    diff: dict[str, Any] = {}
    if slug is not None and slug != audience.slug:
        used = users_of(audience)
        if used:
            raise AudienceError("audience_in_use", "The slug cannot change while "
                                f"{', '.join(used)} use(s) it.", 409, {"used_by": used})
        diff["slug"] = [audience.slug, _free_slug(audience.account, slug_from(slug))]
        audience.slug = diff["slug"][1]
    for name, value in changes.items():
        if getattr(audience, name) != value:
            diff[name] = [getattr(audience, name), value]
            setattr(audience, name, value)
    rule_changed = False
    if rule is not None or text is not None:
        parsed = rule_from_input(rule, text)
        membership.check_rule(audience.account, parsed, slug=audience.slug, actor=actor)
        if parsed != audience.rule:
            diff["rule"] = [audience.rule, parsed]
            audience.rule = parsed
            audience.version += 1
            rule_changed = True
    if not diff:
        return audience
    audience.updated_at = timezone.now()
    audience.save()
    audit.record_change(actor, AuditEvent.Action.AUDIENCE_UPDATED, audience, diff)
    if rule_changed and compute:
        membership.start_compute(audience)
    return audience


@transaction.atomic
def delete_audience(audience: Audience, actor: Actor | None) -> None:
    """Delete an audience nothing uses (its membership and history go with it)."""
    used = users_of(audience)
    if used:
        raise AudienceError("audience_in_use", f"{', '.join(used)} use(s) this audience; "
                            "change them first.", 409, {"used_by": used})
    audit.record_change(actor, AuditEvent.Action.AUDIENCE_DELETED, audience,
                        {"slug": audience.slug})
    audience.delete()
