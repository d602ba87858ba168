"""Why is this profile in (or not in) this audience: the rule's tree with, at every node, the
profile's value for it and the node's result.

Each condition is evaluated by ``compile_predicate`` on that condition alone (the same code
real time runs), groups combine their children as the predicate does, so the root's result is
exactly the whole rule's predicate (a property test checks it). ``explain`` is pure: it reads a
``ProfileView`` and a ``CompileContext``; ``profile_view`` builds the view of a stored profile.

Values are the raw ones; pass ``show`` (e.g. ``PiiPolicy.value``) to hand out a field's value
as the reader may see it: the result is always computed on the raw value.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.utils import timezone

from audiences import membership
from audiences.compiler import (
    CompileContext,
    EventView,
    ProfileView,
    compile_predicate,
    event_since,
    value_test,
)
from audiences.filterql import to_text
from audiences.models import Audience, AudienceMembership
from audiences.rules import RuleError, child_path, node_kind
from profiles import selectors as select
from profiles.calculated.attributes import profile_attributes
from profiles.conditions import KIND_OF_PROPERTY_TYPE, property_type
from profiles.masking import PiiPolicy
from profiles.models import Profile, ProfileConsent, ProfileEvent

if TYPE_CHECKING:
    from cdp_site.models import Account

EVENTS_COUNTED = 10_000  # an event node's count stops here ("10,000 or more")

Show = Callable[[str, Any], Any]


def _as_is(_name: str, value: Any) -> Any:
    return value


@dataclass
class Step:
    """One node of the rule for one profile.

    ``value`` is what the profile has for the node: a field's or attribute's value (None when
    it has none), the number of matching events, whether it is a member of the audience or
    granted the purpose. ``children`` are the sub-rules of and / or / not."""

    path: str
    kind: str
    label: str
    result: bool
    name: str = ""
    value: Any = None
    has_value: bool = False
    children: list[Step] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"path": self.path, "kind": self.kind, "label": self.label,
                "result": self.result, "name": self.name, "value": self.value,
                "has_value": self.has_value,
                "children": [c.as_dict() for c in self.children]}

    def walk(self) -> list[Step]:
        """This step and every step under it, depth first."""
        out = [self]
        for child in self.children:
            out.extend(child.walk())
        return out


# ------------------------------------------------------------------------------ labels


def _property_label(cond: Mapping[str, Any]) -> str:
    op, value = cond["op"], cond.get("value")
    if op in ("exists", "not exists"):
        return f"{cond['property']} {op}"
    return f"{cond['property']} {op} {_short(value)}"


def _short(value: Any) -> str:
    if isinstance(value, list):
        return "(" + ", ".join(_short(v) for v in value) + ")"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(value, ensure_ascii=False)


def event_label(node: Mapping[str, Any]) -> str:
    """An event condition in words: ``at least 2 added_to_cart events where sku exists in the
    last 7 days`` (event conditions have no FilterQL form)."""
    count = node.get("min_count") or 1
    text = f"at least {count} {node['event']} events" if count > 1 \
        else f"{node['event']} event"
    where = node.get("where") or []
    if where:
        text += " where " + " and ".join(_property_label(c) for c in where)
    if node.get("within_days"):
        days = node["within_days"]
        text += f" in the last {days} day{'s' if days != 1 else ''}"
    else:
        text += " ever"
    return text


def label(node: Mapping[str, Any]) -> str:
    """One node as text (FilterQL for everything but events), without ``FILTER``."""
    if node_kind(node) == "event":
        return event_label(node)
    return to_text(dict(node)).removeprefix("FILTER ")


# ------------------------------------------------------------------------------ evaluation


def _leaf(node: dict[str, Any], path: str, kind: str, ctx: CompileContext, view: ProfileView,
          show: Show) -> Step:
    result = compile_predicate(node, ctx)(view)
    name, value, has = _LEAF_VALUES[kind](node, ctx, view, show)
    return Step(path, kind, label(node), result, name, value, has)


def _field_value(node: dict[str, Any], ctx: CompileContext, view: ProfileView, show: Show
                 ) -> tuple[str, Any, bool]:
    name = node["field"]
    raw = view.field_values.get(name)
    return name, None if raw is None else show(name, raw), raw is not None


def _attribute_value(node: dict[str, Any], ctx: CompileContext, view: ProfileView,
                     show: Show) -> tuple[str, Any, bool]:
    name = node["attribute"]
    raw = view.attributes.get(name)
    return name, raw, raw is not None


def _event_value(node: dict[str, Any], ctx: CompileContext, view: ProfileView, show: Show
                 ) -> tuple[str, Any, bool]:
    since = event_since(node, ctx.now)
    tests = [(c["property"], value_test(KIND_OF_PROPERTY_TYPE[property_type(c)], c["op"],
                                        c.get("value"), ctx.now))
             for c in node.get("where") or []]

    def where(properties: Mapping[str, Any]) -> bool:
        return all(test(properties.get(prop)) for prop, test in tests)

    count = view.event_count(node["event"], where, since, EVENTS_COUNTED)
    return node["event"], count, True


def _audience_value(node: dict[str, Any], ctx: CompileContext, view: ProfileView, show: Show
                    ) -> tuple[str, Any, bool]:
    return node["audience"], node["audience"] in view.memberships, True


def _consent_value(node: dict[str, Any], ctx: CompileContext, view: ProfileView, show: Show
                   ) -> tuple[str, Any, bool]:
    return node["consent"], node["consent"] in view.consents, True


_LEAF_VALUES: dict[str, Callable[[dict[str, Any], CompileContext, ProfileView, Show],
                                 tuple[str, Any, bool]]] = {
    "field": _field_value, "attribute": _attribute_value, "event": _event_value,
    "audience": _audience_value, "consent": _consent_value,
}


def _node(node: dict[str, Any], path: str, ctx: CompileContext, view: ProfileView,
          show: Show) -> Step:
    kind = node_kind(node) or ""
    if kind in ("and", "or"):
        children = [_node(c, child_path(path, kind, i), ctx, view, show)
                    for i, c in enumerate(node[kind])]
        combine = all if kind == "and" else any
        return Step(path, kind, "all of" if kind == "and" else "any of",
                    combine(c.result for c in children), children=children)
    if kind == "not":
        inner = _node(node["not"], child_path(path, "not"), ctx, view, show)
        return Step(path, kind, "not", not inner.result, children=[inner])
    return _leaf(node, path, kind, ctx, view, show)


def explain(rule: dict[str, Any], ctx: CompileContext, view: ProfileView, *,
            show: Show = _as_is) -> Step:
    """The rule's tree for this profile. Raises RuleError for a rule that does not validate
    against ``ctx.schema`` (the whole rule is checked first, as compile_predicate does)."""
    compile_predicate(rule, ctx)  # validates the whole rule (depth, every node)
    return _node(rule, "$", ctx, view, show)


# ------------------------------------------------------------------------------ a stored profile


def _event_nodes(rule: Any) -> list[dict[str, Any]]:
    kind = node_kind(rule)
    if kind in ("and", "or") and isinstance(rule[kind], list):
        return [n for child in rule[kind] for n in _event_nodes(child)]
    if kind == "not":
        return _event_nodes(rule["not"])
    return [rule] if kind == "event" else []


def _attributes(profile: Profile) -> dict[str, Any]:
    return dict(profile_attributes(profile.account_id, profile.pk))


def profile_view(profile: Profile, rule: dict[str, Any], now: datetime) -> ProfileView:
    """What ``explain`` needs of a stored profile for this rule: its fields, its events of the
    names the rule counts (within the widest window it reads, newest first, at most
    EVENTS_COUNTED each), its audiences (by slug), granted consents and calculated
    attributes."""
    account_id = profile.account_id
    nodes = _event_nodes(rule)
    events: list[EventView] = []
    for name in sorted({n["event"] for n in nodes if isinstance(n.get("event"), str)}):
        windows = [n.get("within_days") for n in nodes if n.get("event") == name]
        days = [w for w in windows if isinstance(w, int)]
        rows = ProfileEvent.objects.filter(account_id=account_id, profile=profile, event=name)
        if len(days) == len(windows):  # every condition on the event has a window
            rows = rows.filter(at__gte=now - timedelta(days=max(days)))
        events.extend(EventView(name, at, {**(own or {}), **(props or {})})
                      for at, props, own in rows.order_by("-at").values_list(
                          "at", "properties", "own_properties")[:EVENTS_COUNTED])
    memberships = frozenset(AudienceMembership.objects.filter(
        account_id=account_id, profile=profile).values_list("audience__slug", flat=True))
    consents = frozenset(ProfileConsent.objects.filter(
        account_id=account_id, profile=profile, granted=True).values_list("purpose", flat=True))
    return ProfileView(field_values=profile.field_values or {}, events=events,
                       memberships=memberships, consents=consents,
                       attributes=_attributes(profile))


# ------------------------------------------------------------------------------ the page and API


def find_profile(account: Account, q: str) -> Profile | None:
    """A profile by id (``123`` or ``#123``), else by any identifier's exact value."""
    text = q.strip()
    digits = text.removeprefix("#")
    if digits.isdigit() and len(digits) < 19:
        found = select.profile_by_id(account, int(digits))
        if found is not None:
            return found
    catalog = select.field_catalog(account)
    for name in select.identifier_fields(account, catalog):
        found = select.profile_by_identifier(account, name, text)
        if found is not None:
            return found
    return None


def explain_profile(audience: Audience, profile: Profile, policy: PiiPolicy) -> dict[str, Any]:
    """The explanation of one audience for one profile (or the reason there is none)."""
    now = timezone.now()
    ctx = CompileContext(schema=membership.rule_schema(audience.account_id), now=now)
    stored = (AudienceMembership.objects.filter(account_id=audience.account_id,
                                                audience=audience, profile=profile)
              .values_list("since", flat=True).first())
    try:
        step = explain(audience.rule, ctx, profile_view(profile, audience.rule, now),
                       show=policy.value)
    except RuleError as exc:
        return {"step": None, "error": str(exc), "stored": stored}
    return {"step": step, "error": "", "stored": stored, "now": now}
