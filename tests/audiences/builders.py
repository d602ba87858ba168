"""Builders shared by the audience tests: profiles and events as rows, the side tables the
compiler reads (membership, consent, calculated attributes) as temporary tables, and a runner
that selects profile ids with a compiled rule."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from django.db import connection

from audiences.compiler import CompileContext, compile_sql
from audiences.rules import RuleSchema
from cdp_site.models import Account
from profiles.models import Profile, ProfileEvent

NOW = datetime(2025, 6, 15, 12, 0, tzinfo=UTC)
MEMBERSHIP_TABLE = "test_audience_membership"
CONSENT_TABLE = "test_audience_consent"
ATTRIBUTE_TABLE = "test_audience_attribute"


def create_side_tables() -> None:
    with connection.cursor() as cur:
        cur.execute(f"CREATE TEMP TABLE IF NOT EXISTS {MEMBERSHIP_TABLE} "
                    "(profile_id bigint, audience_id text)")
        cur.execute(f"CREATE TEMP TABLE IF NOT EXISTS {CONSENT_TABLE} "
                    "(profile_id bigint, purpose text)")
        cur.execute(f"CREATE TEMP TABLE IF NOT EXISTS {ATTRIBUTE_TABLE} "
                    "(profile_id bigint, name text, value jsonb)")


def context(schema: RuleSchema, now: datetime = NOW) -> CompileContext:
    return CompileContext(schema=schema, now=now, membership_table=MEMBERSHIP_TABLE,
                          membership_column="audience_id", consent_table=CONSENT_TABLE,
                          attribute_table=ATTRIBUTE_TABLE)


def make_profile(account: Account, field_values: Mapping[str, Any], *,
                 events: Iterable[tuple[Any, ...]] = (),
                 memberships: Iterable[str] = (), consents: Iterable[str] = (),
                 attributes: Mapping[str, Any] | None = None) -> Profile:
    profile = Profile.objects.create(account=account, field_values=dict(field_values),
                                     first_seen=NOW, last_seen=NOW)
    ProfileEvent.objects.bulk_create([
        ProfileEvent(account=account, profile=profile, raw_event_id=0, stream="web",
                     event=name, at=at, properties=dict(props),
                     own_properties=dict(own[0]) if own else {})
        for name, at, props, *own in events  # (name, at, mapped values[, own properties])
    ])
    with connection.cursor() as cur:
        for slug in memberships:
            cur.execute(f"INSERT INTO {MEMBERSHIP_TABLE} VALUES (%s, %s)",  # noqa: S608
                        [profile.pk, slug])
        for purpose in consents:
            cur.execute(f"INSERT INTO {CONSENT_TABLE} VALUES (%s, %s)",  # noqa: S608
                        [profile.pk, purpose])
        for name, value in (attributes or {}).items():
            cur.execute(f"INSERT INTO {ATTRIBUTE_TABLE} VALUES (%s, %s, %s::jsonb)",  # noqa: S608
                        [profile.pk, name, json.dumps(value)])
    return profile


def select_ids(account: Account, rule: dict[str, Any], ctx: CompileContext) -> set[int]:
    sql, params = compile_sql(rule, ctx)
    with connection.cursor() as cur:
        cur.execute("SELECT p.id FROM profiles_profile p WHERE p.account_id = %s "  # noqa: S608
                    f"AND p.merged_into_id IS NULL AND ({sql})", [account.pk, *params])
        return {row[0] for row in cur.fetchall()}
