"""django-q2 entry points of the profiles app: thin, they call services."""

from __future__ import annotations

from profiles import aggregate, partitions


def aggregate_streams(max_seconds: float = 50.0) -> int:
    """Catch up with the raw store (the `aggregate_streams --loop` process does this
    continuously; this scheduled run keeps usage counts moving when that process is absent).
    Bounded well below the cluster's timeout."""
    return aggregate.aggregate_streams(max_seconds=max_seconds).events


def ensure_partitions() -> list[str]:
    return partitions.ensure_partitions()


def drop_expired_raw_events() -> dict[str, int]:
    return partitions.drop_expired_partitions()


def forget_old_message_ids() -> int:
    return partitions.forget_old_message_ids()
