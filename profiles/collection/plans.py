"""Tracking plans: a JSON Schema per stream and event name, checked as events arrive.

``allow`` keeps a violating event and records the violations on it; ``block`` refuses it (it
becomes a failed event). Validators are compiled once per plan version and cached in process;
the services below (``create_plan``, ``update_plan``, ``delete_plan``) check a schema before it
is saved and drop this process's cache after a change.
"""

from __future__ import annotations

import json
import time
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

from django.db import IntegrityError, transaction
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from profiles.collection.messages import Failure, IncomingEvent
from profiles.models import TrackingPlan

if TYPE_CHECKING:
    from cdp_site.models import Account

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


_Event = TypeVar("_Event", bound=IncomingEvent)


def apply_plans(
    account: Account, stream: str, events: list[_Event]
) -> tuple[list[_Event], list[Failure]]:
    """Split events into kept and blocked, recording violations on the kept ones."""
    plans = plans_for(account, stream)
    if not plans:
        return events, []
    kept: list[_Event] = []
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


# Services: changes to plans.


class PlanError(Exception):
    """A plan change refused: machine-readable code, message, HTTP status."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


def validate_schema(schema: Any) -> None:
    """Refuse what is not a JSON Schema (an object, or true/false), saying why."""
    if not isinstance(schema, dict | bool):
        raise PlanError("invalid_schema", "The schema must be a JSON object (or true/false).")
    try:
        check_schema(schema)
    except SchemaError as error:
        where = "/".join(str(part) for part in error.path)
        raise PlanError(
            "invalid_schema",
            f"Not a valid JSON Schema{f' at {where}' if where else ''}: {error.message}",
        ) from None


def _forget_now_and_on_commit(account: Account, *streams: str) -> None:
    for stream in set(streams):
        forget(account, stream)
        transaction.on_commit(partial(forget, account, stream))


def _saved(plan: TrackingPlan) -> TrackingPlan:
    try:
        with transaction.atomic():
            plan.save()
    except IntegrityError:
        raise PlanError(
            "plan_exists",
            f"Stream {plan.stream!r} already has a plan for {plan.event!r}.",
            409,
        ) from None
    return plan


def create_plan(account: Account, *, stream: str, event: str, schema: Any,
                mode: str = TrackingPlan.Mode.ALLOW, enabled: bool = True) -> TrackingPlan:
    """A plan for one event name (or message type) of a stream; it applies from the next
    request in this process and within seconds in the others."""
    validate_schema(schema)
    plan = _saved(TrackingPlan(account=account, stream=stream, event=event, schema=schema,
                               mode=mode, enabled=enabled))
    _forget_now_and_on_commit(account, stream)
    return plan


def update_plan(plan: TrackingPlan, **changes: Any) -> TrackingPlan:
    """Change a plan's stream, event, schema, mode or enabled flag."""
    allowed = {"stream", "event", "schema", "mode", "enabled"}
    unknown = set(changes) - allowed
    if unknown:
        raise PlanError("invalid", f"Cannot change {', '.join(sorted(unknown))}.")
    if "schema" in changes:
        validate_schema(changes["schema"])
    before = plan.stream
    for name, value in changes.items():
        setattr(plan, name, value)
    _saved(plan)
    _forget_now_and_on_commit(plan.account, before, plan.stream)
    return plan


def delete_plan(plan: TrackingPlan) -> None:
    account, stream = plan.account, plan.stream
    plan.delete()
    _forget_now_and_on_commit(account, stream)
