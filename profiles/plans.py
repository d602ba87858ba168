"""Tracking plans: a JSON Schema per stream and event name, checked as events arrive.

``allow`` keeps a violating event and records the violations on it; ``block`` refuses it (it
becomes a failed event). Validators are compiled once per plan version and cached in process.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from profiles.models import TrackingPlan

if TYPE_CHECKING:
    from cdp_site.models import Account
    from profiles.collect import Failure, IncomingEvent

CACHE_SECONDS = 5.0
MAX_ERRORS = 5

_cache: dict[tuple[int, str], tuple[float, dict[str, tuple[str, Draft202012Validator]]]] = {}


def check_schema(schema: Any) -> None:
    """Raise SchemaError for a schema that is not valid JSON Schema (refused when saved)."""
    Draft202012Validator.check_schema(schema)


def plans_for(account: Account, stream: str) -> dict[str, tuple[str, Draft202012Validator]]:
    key = (account.pk, stream)
    cached = _cache.get(key)
    now = time.monotonic()
    if cached is not None and now - cached[0] < CACHE_SECONDS:
        return cached[1]
    plans: dict[str, tuple[str, Draft202012Validator]] = {}
    for plan in TrackingPlan.objects.for_account(account).filter(stream=stream, enabled=True):
        try:
            plans[plan.event] = (plan.mode, Draft202012Validator(plan.schema))
        except SchemaError:
            continue  # refused on save; an old invalid row must not stop collection
    _cache[key] = (now, plans)
    return plans


def forget(account: Account, stream: str) -> None:
    """Drop this process's cache after a plan changes (other processes refresh within 5 s)."""
    _cache.pop((account.pk, stream), None)


def apply_plans(
    account: Account, stream: str, events: list[IncomingEvent]
) -> tuple[list[IncomingEvent], list[Failure]]:
    """Split events into kept and blocked, recording violations on the kept ones."""
    from profiles.collect import Failure

    plans = plans_for(account, stream)
    if not plans:
        return events, []
    kept: list[IncomingEvent] = []
    blocked: list[Failure] = []
    for item in events:
        plan = plans.get(item.event or item.type)
        if plan is None:
            kept.append(item)
            continue
        mode, validator = plan
        errors = sorted(validator.iter_errors(item.message), key=lambda e: list(e.path))
        if not errors:
            kept.append(item)
            continue
        details = [
            {"path": "/".join(str(p) for p in error.path), "message": error.message[:300]}
            for error in errors[:MAX_ERRORS]
        ]
        if mode == TrackingPlan.Mode.BLOCK:
            import json

            blocked.append(Failure(
                code="tracking_plan",
                reason=f"Violates the tracking plan for {item.event or item.type!r}: "
                       + "; ".join(f"{d['path'] or '(root)'}: {d['message']}" for d in details),
                body=json.dumps(item.message, default=str), message_id=item.message_id,
            ))
        else:
            item.warnings.append({"code": "tracking_plan", "violations": details})
            kept.append(item)
    return kept, blocked
