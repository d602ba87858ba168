"""The registry of job kinds: one folder per kind (``connectors/kinds/<kind>/``, as
Healthchecks' ``hc/integrations/<kind>/``), each defining a ``Kind`` subclass registered with
``@register``. The runner, the API and the pages only ever ask the registry."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from importlib import import_module
from typing import TYPE_CHECKING, Any, ClassVar

import jsonschema

from connectors.errors import InvalidInput

if TYPE_CHECKING:
    from connectors.models import Job

KIND_PACKAGES = ("audience_webhook", "webhook_enrichment", "event_forwarding",
                 "database_import")
_REGISTRY: dict[str, type[Kind]] = {}


@dataclass
class RunContext:
    """What a step may use: the job, its decrypted secret (never logged), its cursor, a
    clock and a sleeper (both replaced in tests)."""

    job: Job
    secret: dict[str, Any]
    cursor: dict[str, Any]
    now: Callable[[], datetime]
    sleep: Callable[[float], None]
    extra: dict[str, Any] = field(default_factory=dict)
    monotonic: Callable[[], float] = time.monotonic  # paces rate limits


@dataclass
class StepResult:
    """One batch's outcome. ``commit`` runs in the transaction that saves the new cursor, so a
    kind's own state (what an export delivered) moves with it."""

    cursor: dict[str, Any]
    done: bool
    added: int = 0
    removed: int = 0
    omitted: int = 0
    errors: int = 0
    commit: Callable[[], None] | None = None
    problems: list[str] = field(default_factory=list)  # logged as error entries


class Kind:
    key: ClassVar[str]
    label: ClassVar[str]
    description: ClassVar[str] = ""
    authorization_kind: ClassVar[str | None] = "http"
    config_schema: ClassVar[dict[str, Any]]
    example_config: ClassVar[dict[str, Any]] = {}  # what the creation wizard starts from

    def validate(self, job: Job) -> dict[str, Any]:
        """The configuration as stored, or InvalidInput naming the field path."""
        errors = sorted(jsonschema.Draft202012Validator(self.config_schema)
                        .iter_errors(job.config), key=lambda e: list(e.absolute_path))
        if errors:
            error = errors[0]
            path = ".".join(["config", *(str(p) for p in error.absolute_path)])
            if error.validator == "required":
                missing = error.message.split("'")[1] if "'" in error.message else ""
                path = f"{path}.{missing}" if missing else path
                raise InvalidInput(path, "is required", code="config_required")
            raise InvalidInput(path, error.message, code="config_invalid")
        return self.check(job, dict(job.config))

    def check(self, job: Job, config: dict[str, Any]) -> dict[str, Any]:
        """Checks against the account's data (an audience exists...)."""
        return config

    def step(self, ctx: RunContext) -> StepResult:
        raise NotImplementedError

    def test_connection(self, ctx: RunContext) -> str:
        """One real call; a sentence saying how it went (errors raise)."""
        raise NotImplementedError


def register(cls: type[Kind]) -> type[Kind]:
    _REGISTRY[cls.key] = cls
    return cls


def kinds() -> dict[str, type[Kind]]:
    if not _REGISTRY:
        for package in KIND_PACKAGES:
            import_module(f"connectors.kinds.{package}")
    return dict(_REGISTRY)


def get_kind(key: str) -> Kind:
    found = kinds().get(key)
    if found is None:
        raise InvalidInput("kind", f"unknown kind {key!r}; one of {', '.join(sorted(kinds()))}",
                           code="unknown_kind")
    return found()
