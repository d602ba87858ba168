"""Builders for tests of live audiences: an account with the Lytics use-case schema (plus a
few fields for events), events through the real pipeline, queued background tasks run the
way the django-q2 cluster runs them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from audiences.models import Audience, MembershipChange
from cdp_site.models import Account
from profiles.models import Profile
from profiles.processing.identity import find_profile
from profiles.schema.drafts import save_field, save_mapping
from profiles.schema.lytics import install_lytics_schema
from profiles.schema.versions import publish
from tests.profiles.processing import run, send

EXTRA_FIELDS = [
    # name, type, merge operator, stream, expression
    ("price", "number", "latest", "web", "properties.price"),
    ("sku", "string", "latest", "web", "properties.sku"),
]


def lytics_account(account: Account) -> Account:
    """The Lytics use-case schema (email, _uid, taxonomy from the web; loyalty_tier and
    preferred_activities from crm_users) and price/sku fields mapped from web events."""
    install_lytics_schema(account, publish_now=False)
    for name, type_, operator, stream, expression in EXTRA_FIELDS:
        field = save_field(account, name=name, type=type_, merge_operator=operator)
        save_mapping(account, field=field, stream=stream, expression=expression)
    publish(account)
    return account


FAILED_TASKS: list[tuple[str, Exception]] = []


def run_queued_tasks() -> int:
    """Take every queued django-q2 task off the broker and run it, as a cluster worker would
    (in this test's transaction: the worker itself would close the test's connection); how
    many ran. A task that raises is kept as failed, like the cluster does."""
    from django.utils.module_loading import import_string
    from django_q.brokers import get_broker
    from django_q.signing import SignedPackage

    broker = get_broker()
    ran = 0
    while True:
        batch = broker.dequeue()
        if not batch:
            return ran
        for ack_id, package in batch:
            task = SignedPackage.loads(package)
            func = task["func"]
            func = import_string(func) if isinstance(func, str) else func
            try:
                func(*task.get("args", ()), **task.get("kwargs", {}))
            except Exception as exc:  # the cluster records a failed task and goes on
                FAILED_TASKS.append((task["name"], exc))
            broker.acknowledge(ack_id)
            ran += 1


_clock = iter(range(1, 10**9))


def process(account: Account, *messages: dict[str, Any], stream: str = "web",
            at: datetime | None = None) -> None:
    """Store the messages and process them. Without ``at``, each call's events come 10 s
    after the previous call's (``latest`` fields need later events to change)."""
    send(account, *messages, stream=stream,
         at=at or datetime.now(UTC) - timedelta(hours=6) + timedelta(seconds=10 * next(_clock)))
    run(account)


def profile_of(account: Account, field: str, value: str) -> Profile:
    found = find_profile(account, field, value)
    assert found is not None, f"no profile with {field}={value}"
    return found


def members(audience: Audience) -> set[int]:
    return set(audience.memberships.values_list("profile_id", flat=True))


def changes(audience: Audience, **filters: Any) -> list[tuple[int, str, str]]:
    return [(c.profile_id, c.kind, c.cause) for c in MembershipChange.objects.filter(
        audience=audience, **filters).order_by("id")]
