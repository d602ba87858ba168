"""The schema of the Lytics use-case guides, installed through the ordinary services.

Identifiers (email, the app's ``user_id``, the ``_uid`` cookie), the page taxonomy and the
CRM's loyalty tier and preferred activities, with their mappings on the ``default``, ``web`` and
``crm_users`` streams. The demo, the benchmarks and many tests start from it.

Segment's ``alias`` (``previousId`` → ``userId``) links its two ids: ``userId`` maps to
``user_id`` as on every message, and ``previousId`` (the anonymous id the visitor had before,
in Segment's spec) to ``_uid``, a second mapping beside the anonymous id's; the event then
carries both, and identity resolution merges the profile holding the previous id into the
user's (docs/schema.md, "Segment's alias").
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.db import transaction

from profiles.models import Field, Mapping, SchemaVersion
from profiles.schema.drafts import save_field, save_mapping
from profiles.schema.versions import diff_schema, live_version, publish

if TYPE_CHECKING:
    from cdp_site.models import Account

__all__ = ["LYTICS_FIELDS", "LYTICS_MAPPINGS", "install_lytics_schema"]

LYTICS_FIELDS: list[dict[str, Any]] = [
    {"name": "email", "description": "Email address (the strongest identifier).",
     "type": "string", "merge_operator": "latest", "is_identifier": True,
     "identifier_rank": 1, "identifier_capacity": 1, "is_pii": True},
    {"name": "user_id", "description": "The app's user id (Segment's userId).",
     "type": "string", "merge_operator": "latest", "is_identifier": True,
     "identifier_rank": 1, "identifier_capacity": 1},
    {"name": "_uid", "description": "Browser cookie ids (the tag's seerid / anonymousId).",
     "type": "[]string", "merge_operator": "capped", "capacity": 50, "is_identifier": True,
     "identifier_rank": 2, "identifier_capacity": 50},
    {"name": "taxonomy", "description": "Content category of the latest page viewed.",
     "type": "string", "merge_operator": "latest"},
    {"name": "loyalty_tier", "description": "Loyalty tier from the CRM.",
     "type": "string", "merge_operator": "latest"},
    {"name": "preferred_activities", "description": "Activities the CRM says they prefer.",
     "type": "[]string", "merge_operator": "merge"},
]
LYTICS_MAPPINGS: list[tuple[str, str, str]] = [
    # field, stream, expression
    *[(f, s, e) for s in ("default", "web") for f, e in (
        ("email", "email(oneof(email, traits.email, context.traits.email))"),
        ("_uid", "oneof(`_uid`, anonymousId)"),
        ("user_id", "userId"),
        ("_uid", "previousId"),  # an alias's previous (anonymous) id
        ("taxonomy", "oneof(taxonomy, properties.taxonomy)"),
    )],
    ("email", "crm_users", "email(origin.email)"),
    ("loyalty_tier", "crm_users", "response.loyalty_tier"),
    ("preferred_activities", "crm_users", "response.preferred_activities"),
]


@transaction.atomic
def install_lytics_schema(account: Account, *, user: Any = None, publish_now: bool = True
                          ) -> SchemaVersion | None:
    """The schema of the Lytics use-case guides: email and user_id (rank 1, capacity 1; email
    first on the tie) and the `_uid` cookie (rank 2, capacity 50) as identifiers, `taxonomy`
    from page views, `loyalty_tier` and `preferred_activities` from CRM records (stream
    ``crm_users``). Fields already present are
    updated; mappings are added once. Published unless ``publish_now`` is false (then the
    live version, if any, is returned unchanged... or None)."""
    fields = {f.name: f for f in Field.objects.for_account(account)}
    for entry in LYTICS_FIELDS:
        attrs = {k: v for k, v in entry.items() if k != "name"}
        fields[entry["name"]] = save_field(account, instance=fields.get(entry["name"]),
                                           name=entry["name"], **attrs)
    have = set(Mapping.objects.for_account(account)
               .values_list("field__name", "stream", "expression"))
    for name, stream, expression in LYTICS_MAPPINGS:
        if (name, stream, expression) not in have:
            save_mapping(account, field=fields[name], stream=stream, expression=expression)
    if not publish_now:
        return live_version(account)
    live = live_version(account)
    if live is not None and not diff_schema(account)["has_changes"]:
        return live
    return publish(account, user=user, note="Lytics use-case schema")
