"""What compiling a rule against the live tables needs, shared by the full computation
(``audiences.membership``) and real time (``audiences.realtime``): the compile context of
the live membership, consent and attribute tables, and audiences in dependency order."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING

from audiences.compiler import CompileContext
from audiences.models import Audience
from audiences.rules import RuleSchema

if TYPE_CHECKING:
    from cdp_site.models import Account

MEMBERSHIP_TABLE = "audiences_audiencemembership"
CONSENT_TABLE = "profiles_profileconsent"
ATTRIBUTE_TABLE = "profiles_attributevalue"


def account_pk(account: Account | int) -> int:
    return account if isinstance(account, int) else account.pk


def compile_context(account: Account | int, schema: RuleSchema, now: datetime,
                    slug_ids: Mapping[str, int] | None = None) -> CompileContext:
    """The compile context of the live tables: memberships by audience id, granted consents,
    calculated attribute values."""
    ids = dict(slug_ids) if slug_ids is not None else dict(
        Audience.objects.filter(account_id=account_pk(account)).values_list("slug", "pk"))
    return CompileContext(
        schema=schema, now=now, membership_table=MEMBERSHIP_TABLE,
        membership_column="audience_id", audience_key=lambda slug: ids.get(slug, -1),
        consent_table=CONSENT_TABLE, consent_granted_column="granted",
        attribute_table=ATTRIBUTE_TABLE, account_id=account_pk(account))


def audience_order(audiences: Iterable[Audience]) -> list[Audience]:
    """Audiences so that each comes after those it includes or excludes (rules.py refuses
    cycles; should one slip in, the rest keep their name order)."""
    by_slug = {a.slug: a for a in audiences}
    done: set[str] = set()
    out: list[Audience] = []

    def visit(audience: Audience, trail: frozenset[str]) -> None:
        if audience.slug in done or audience.slug in trail:
            return
        for dep in audience.depends_on:
            kind, _, slug = dep.partition(":")
            if kind == "audience" and slug in by_slug:
                visit(by_slug[slug], trail | {audience.slug})
        done.add(audience.slug)
        out.append(audience)

    for audience in sorted(by_slug.values(), key=lambda a: (a.name, a.pk)):
        visit(audience, frozenset())
    return out
