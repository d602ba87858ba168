"""What the audience builder offers a marketer: the fields, calculated attributes, events,
audiences and consent purposes a rule can use, the operators that fit each type (from
the rule core's registry, profiles.conditions), and sample values to pick from.

Samples are read from recent data with bounded queries (the latest ``SAMPLE_PROFILES``
profiles, the latest ``SAMPLE_EVENTS`` events of a name; event and purpose names by skipping
through their indexes), so they stay fast on large accounts. A PII field's samples are not
shown to a reader whose values would be masked.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import TYPE_CHECKING, Any

from django.db import connection

from audiences.models import Audience
from audiences.rules import REVEALING_OPERATORS, RuleSchema
from profiles.conditions import KIND_OF_PROPERTY_TYPE, KIND_OF_TYPE, OPERATORS, PROPERTY_TYPES
from profiles.models import AttributeValue, CalculatedAttribute, ProfileEvent
from profiles.selectors import field_catalog

if TYPE_CHECKING:
    from cdp_site.models import Account
    from profiles.masking import PiiPolicy

SAMPLE_PROFILES = 5000
SAMPLE_EVENTS = 500
SAMPLES_SHOWN = 12
NAMES_LISTED = 300

# A short hint per kind, shown next to the value input.
VALUE_HINTS = {
    "text": "text, case-insensitive",
    "numeric": "a number",
    "bool": "true or false",
    "date": "a date (2024-05-01) or relative: now-30d (h d w M y)",
    "set": "one element, case-insensitive",
    "map": "a key",
    "any": "",
}


def operators() -> list[dict[str, Any]]:
    """The operator registry as the builder needs it, in registry order (``revealing``: not
    offered on a field the reader sees masked, see ``audiences.rules.REVEALING_OPERATORS``)."""
    return [{"name": op.name, "kinds": sorted(op.kinds), "shape": op.shape,
             "revealing": op.name in REVEALING_OPERATORS} for op in OPERATORS.values()]


def _skip_scan(table: str, column: str, account_id: int, extra: str = "") -> list[str]:
    """Distinct values of an indexed (account_id, column) pair, one index probe each."""
    sql = f"""
    WITH RECURSIVE names(name, n) AS (
        (SELECT {column}, 1 FROM {table} WHERE account_id = %(a)s {extra}
         ORDER BY {column} LIMIT 1)
        UNION ALL
        SELECT (SELECT t.{column} FROM {table} t WHERE t.account_id = %(a)s {extra}
                AND t.{column} > names.name ORDER BY t.{column} LIMIT 1), n + 1
        FROM names WHERE names.name IS NOT NULL AND n < %(limit)s
    )
    SELECT name FROM names WHERE name IS NOT NULL AND name <> ''"""  # noqa: S608
    with connection.cursor() as cur:
        cur.execute(sql, {"a": account_id, "limit": NAMES_LISTED})
        return [row[0] for row in cur.fetchall()]


def event_names(account_id: int) -> list[str]:
    return _skip_scan("profiles_profileevent", "event", account_id)


def consent_purposes(account_id: int) -> list[str]:
    return _skip_scan("profiles_profileconsent", "purpose", account_id, "AND granted")


def catalog(account: Account, schema: RuleSchema, policy: PiiPolicy,
            exclude_slug: str | None = None) -> dict[str, Any]:
    """Everything the builder page needs up front (samples come later, per field)."""
    info = field_catalog(account)
    fields = []
    for name, type_ in sorted(schema.fields.items()):
        meta = info.get(name)
        fields.append({"name": name, "type": type_, "kind": KIND_OF_TYPE[type_],
                       "description": meta.description if meta else "",
                       "pii": bool(meta and meta.is_pii),
                       "masked": policy.masks(name),
                       "identifier": meta is not None and meta.identifier_rank is not None})
    described = dict(CalculatedAttribute.objects.filter(account_id=account.pk)
                     .values_list("name", "description"))
    attributes = [{"name": name, "type": type_, "kind": KIND_OF_TYPE[type_],
                   "description": described.get(name, "")}
                  for name, type_ in sorted(schema.attributes.items())]
    audiences = [{"slug": slug, "name": name} for slug, name in
                 Audience.objects.filter(account_id=account.pk, archived=False)
                 .exclude(slug=exclude_slug or "").values_list("slug", "name")]
    return {
        "fields": fields,
        "attributes": attributes,
        "audiences": audiences,
        "events": event_names(account.pk),
        "purposes": consent_purposes(account.pk),
        "operators": operators(),
        "property_types": [{"type": t, "kind": KIND_OF_PROPERTY_TYPE[t]}
                           for t in PROPERTY_TYPES],
        "hints": VALUE_HINTS,
    }


# ------------------------------------------------------------------------------ samples

_VALUES_BY_KIND = {
    # how one stored value becomes the values offered: scalars as they are, set elements,
    # map keys
    "set": "SELECT jsonb_array_elements_text(v) FROM s WHERE jsonb_typeof(v) = 'array'",
    "map": "SELECT jsonb_object_keys(v) FROM s WHERE jsonb_typeof(v) = 'object'",
}
_SCALAR = "SELECT v FROM s WHERE jsonb_typeof(v) NOT IN ('null', 'array', 'object')"


def _top(rows: list[tuple[Any, int]]) -> list[dict[str, Any]]:
    return [{"value": value, "count": count} for value, count in rows]


def field_samples(account_id: int, name: str, type_: str) -> dict[str, Any]:
    """The most frequent values of a field among the latest profiles: ``values`` (value,
    count), ``with_value`` (profiles having one) of ``scanned``."""
    kind = KIND_OF_TYPE.get(type_, "text")
    pick = _VALUES_BY_KIND.get(kind, _SCALAR)
    sql = f"""
    WITH recent AS (
        SELECT field_values FROM profiles_profile
        WHERE account_id = %(a)s AND merged_into_id IS NULL
        ORDER BY last_seen DESC LIMIT %(n)s
    ), s AS (SELECT field_values -> %(f)s AS v FROM recent)
    SELECT (SELECT count(*) FROM recent), (SELECT count(*) FROM s WHERE v IS NOT NULL
                                           AND jsonb_typeof(v) <> 'null'),
           (SELECT coalesce(json_agg(json_build_array(x, c)), '[]') FROM (
                SELECT x, count(*) AS c FROM ({pick}) AS picked(x)
                GROUP BY x ORDER BY count(*) DESC, x::text LIMIT %(k)s) top)"""  # noqa: S608
    with connection.cursor() as cur:
        cur.execute(sql, {"a": account_id, "n": SAMPLE_PROFILES, "f": name,
                          "k": SAMPLES_SHOWN})
        scanned, having, top = cur.fetchone()
    return {"values": _top(_decoded(top)), "with_value": having, "scanned": scanned}


def _decoded(top: Any) -> list[tuple[Any, int]]:
    rows = json.loads(top) if isinstance(top, str) else top
    return [(value, count) for value, count in rows]


def attribute_samples(account_id: int, name: str) -> dict[str, Any]:
    """The most frequent values of a calculated attribute (up to SAMPLE_PROFILES values)."""
    attribute = (CalculatedAttribute.objects.filter(account_id=account_id, name=name)
                 .values_list("pk", flat=True).first())
    values = list(AttributeValue.objects.filter(account_id=account_id, attribute_id=attribute)
                  .values_list("value", flat=True)[:SAMPLE_PROFILES])
    present = [v for v in values if v is not None and not isinstance(v, list | dict)]
    counts = Counter(present)
    top = sorted(counts.items(), key=lambda kv: (-kv[1], str(kv[0])))[:SAMPLES_SHOWN]
    return {"values": _top(top), "with_value": len(present), "scanned": len(values)}


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    return "string"


def event_properties(account_id: int, event: str, policy: PiiPolicy) -> dict[str, Any]:
    """The properties of the latest SAMPLE_EVENTS events of a name: each with its most common
    JSON type and frequent values (none for PII the reader may not see)."""
    rows = list(ProfileEvent.objects.filter(account_id=account_id, event=event)
                .order_by("-at").values_list("properties", flat=True)[:SAMPLE_EVENTS])
    values: dict[str, Counter[Any]] = {}
    types: dict[str, Counter[str]] = {}
    for raw in rows:
        props = raw if isinstance(raw, dict) else {}
        for key, value in props.items():
            if value is None or isinstance(value, list | dict):
                continue
            values.setdefault(key, Counter())[value] += 1
            types.setdefault(key, Counter())[_json_type(value)] += 1
    properties = []
    for key in sorted(values):
        hidden = policy.masks(key)
        top = [] if hidden else sorted(values[key].items(),
                                       key=lambda kv: (-kv[1], str(kv[0])))[:SAMPLES_SHOWN]
        properties.append({"name": key, "type": types[key].most_common(1)[0][0],
                           "values": _top(top), "hidden": hidden})
    return {"properties": properties, "scanned": len(rows)}
