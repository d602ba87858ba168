"""What the pipeline's steps share: the ``Batch`` and its events.

The runner (``profiles.processing.pipeline``) fills a batch's inputs and calls the steps in
order; each step reads what earlier steps wrote and writes its own outputs into named fields
of the batch (``Batch`` says which step writes each field and which steps read it). The steps
(``profiles.processing.steps``, then the downstream steps named in
``settings.STRATA_PIPELINE_STEPS``) and the runner import this module; it imports neither, so
no loop appears between them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from profiles.processing.identity import Ident, IdentityGraph
    from profiles.schema.compiled import CompiledSchema

__all__ = ["Batch", "PipelineEvent", "Prepared", "ProfileRow", "RetryBatch", "Step",
           "unordered"]


class RetryBatch(RuntimeError):
    """Something the batch relied on changed under it (a profile deleted by a GDPR request
    while the batch resolved identities): the batch rolls back, its events go back to the
    queue and are processed again."""


@dataclass
class PipelineEvent:
    """One raw event on its way through the steps."""

    raw_event_id: int
    stream: str  # after route rules
    source_stream: str
    type: str
    event: str
    message_id: str
    at: datetime
    received_at: datetime
    message: dict[str, Any]
    values: list[tuple[str, Any]] = field(default_factory=list)  # (field, value as JSON)
    cells: list[Any] = field(default_factory=list)  # each value's one-event operator state
    identifiers: list[tuple[int, str, str]] = field(default_factory=list)
    warnings: list[tuple[str, str, str]] = field(default_factory=list)  # code, field, message
    failure: tuple[str, str] | None = None  # code, reason
    profile_key: int | None = None
    profile_id: int | None = None  # the surviving profile its data went to

    def fail(self, code: str, reason: str) -> None:
        if self.failure is None:
            self.failure = (code, reason)


@dataclass
class ProfileRow:
    """A profile as the merge step folds into it: its field states and counters, read (and
    locked) by ``identify``, or new (``exists`` False)."""

    states: dict[str, Any]
    first_seen: datetime | None
    last_seen: datetime | None
    event_count: int = 0
    conflicts: int = 0
    compactions: int = 0
    exists: bool = True
    changed: bool = False
    xmin: str | None = None  # the row version it was read at


@dataclass
class Prepared:
    """What ``identify``'s prepare read before the turn, without locks: the identifier keys
    of the batch, the profiles owning them (by id) and their identifiers."""

    keys: set[tuple[str, str]]
    rows: dict[int, ProfileRow] = field(default_factory=dict)
    identifiers: list[Ident] = field(default_factory=list)


@dataclass
class Batch:
    """What the steps share. Each field past the inputs is written by one step and read by
    the steps after it; a step that has nothing to do leaves its fields empty.

    Inputs (the runner): ``account_id``, ``schema`` (the live schema, None when there is
    none), ``events`` (in receive order), ``now``, ``max_identifiers``.

    ``identify`` (profiles.processing.steps) writes ``prepared`` (its own reads from before
    the turn, in its ``prepare``), then ``graph``, ``profile_ids`` (identity key -> profile
    id), ``profile_rows`` (the profiles it read and locked, for ``merge``), ``new_profiles``
    (ids created by this batch: read by ``merge`` and ``audiences.realtime``) and each event's
    ``profile_id``.

    ``merge`` (profiles.processing.steps) writes ``merged`` (merged-away id -> survivor id:
    read by ``consent.record``, ``calculated.attributes.compute``, ``audiences.realtime`` and
    ``experiences.tracking``) and ``changed_profiles`` (ids of surviving profiles whose data
    changed: read by ``audiences.realtime``).

    ``consent.record`` (profiles.processing.consent) writes ``changed_consents`` and
    ``calculated.attributes.compute`` writes ``changed_attributes`` (profile id -> the
    purposes, or attribute names, whose value changed): both read by ``audiences.realtime``.
    """

    account_id: int
    schema: CompiledSchema | None
    events: list[PipelineEvent]
    now: datetime
    max_identifiers: int = 50
    # identify
    prepared: Prepared | None = None
    graph: IdentityGraph | None = None
    profile_ids: dict[int, int] = field(default_factory=dict)
    profile_rows: dict[int, ProfileRow] = field(default_factory=dict)
    new_profiles: set[int] = field(default_factory=set)
    # merge
    merged: dict[int, int] = field(default_factory=dict)
    changed_profiles: set[int] = field(default_factory=set)
    # consent.record, calculated.attributes.compute
    changed_consents: dict[int, set[str]] = field(default_factory=dict)
    changed_attributes: dict[int, set[str]] = field(default_factory=dict)

    @property
    def live(self) -> list[PipelineEvent]:
        """The events still going (not failed)."""
        return [e for e in self.events if e.failure is None]


Step = Callable[[Batch], None]


def unordered(step: Step) -> Step:
    """Mark a step that needs no profile state and may run before the account's turn (in
    parallel with other workers' batches of the same account)."""
    step.unordered = True  # type: ignore[attr-defined]
    return step
