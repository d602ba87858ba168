"""Every action the code writes to the audit log is one of AuditEvent.Action's choices: saved
rows validate (full_clean) and the admin shows the action's label, not its raw value."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

from cdp_site.models import Account, AuditEvent
from tests.audiences.live import lytics_account, process, run_queued_tasks
from tests.conftest import make_token, token_client

GOLD = {"field": "loyalty_tier", "op": "=", "value": "Gold"}
ROOT = Path(settings.BASE_DIR)
SKIP = {".venv", "tests", "migrations", "node_modules", "bench", "var"}


def _action_argument(call: ast.Call) -> ast.expr | None:
    """The action passed to audit.record(account, actor, action, ...),
    audit.record_change(actor, action, ...), AuditEvent(action=...) or
    AuditEvent.objects.create(action=...)."""
    func = call.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
    owner = func.value if isinstance(func, ast.Attribute) else None
    if name == "record" and isinstance(owner, ast.Name) and owner.id == "audit":
        return call.args[2] if len(call.args) > 2 else next(
            (k.value for k in call.keywords if k.arg == "action"), None)
    if name == "record_change" and isinstance(owner, ast.Name) and owner.id == "audit":
        return call.args[1] if len(call.args) > 1 else next(
            (k.value for k in call.keywords if k.arg == "action"), None)
    if name == "AuditEvent" or (name == "create" and ast.unparse(func).startswith(
            "AuditEvent.objects")):
        return next((k.value for k in call.keywords if k.arg == "action"), None)
    return None


def _written_actions() -> dict[str, str]:
    """action -> where it is written, for every audit write in the project's code."""
    found: dict[str, str] = {}
    for path in sorted(ROOT.rglob("*.py")):
        if SKIP & set(path.relative_to(ROOT).parts):
            continue
        tree = ast.parse(path.read_text())
        constants = {t.id: n.value.value for n in ast.walk(tree) if isinstance(n, ast.Assign)
                     and isinstance(n.value, ast.Constant) and isinstance(n.value.value, str)
                     for t in n.targets if isinstance(t, ast.Name)}
        for call in (n for n in ast.walk(tree) if isinstance(n, ast.Call)):
            arg = _action_argument(call)
            if arg is None or (isinstance(arg, ast.Name) and arg.id == "action"):
                continue  # a wrapper passing its own parameter on: its callers are walked
            where = f"{path.relative_to(ROOT)}:{call.lineno}"
            if isinstance(arg, ast.Constant):
                found[arg.value] = where
            elif isinstance(arg, ast.Name) and arg.id in constants:
                found[constants[arg.id]] = where
            elif isinstance(arg, ast.Attribute) and ast.unparse(arg.value) in (
                    "AuditEvent.Action", "Action"):
                found[getattr(AuditEvent.Action, arg.attr, f"<missing {arg.attr}>")] = where
            else:
                found[f"<unknown {ast.unparse(arg)}>"] = where
    return found


def test_every_action_the_code_writes_is_a_choice() -> None:
    written = _written_actions()
    assert {"audience.created", "audience.updated", "audience.deleted",
            "profile.deleted", "token.created", "experience.created", "experience.activated",
            "experience.completed", "goal.deleted", "calculated_attribute.updated",
            "schema.published", "schema.reverted", "schema.rebuild_started",
            "schema_field.created", "schema_field.updated", "schema_field.deleted",
            "mapping.created", "mapping.updated", "mapping.deleted", "route_rule.created",
            "route_rule.updated", "route_rule.deleted"} <= set(written)
    choices = set(AuditEvent.Action.values)
    assert {a: w for a, w in written.items() if a not in choices} == {}


def _check(account: Account, action: str) -> None:
    [event] = AuditEvent.objects.filter(account=account, action=action)
    event.full_clean()
    label = event.get_action_display()
    assert label != action and label == AuditEvent.Action(action).label


@pytest.mark.django_db
def test_audience_and_profile_actions_saved_through_the_api_validate_and_show_labels(
        account: Account, django_capture_on_commit_callbacks: Any) -> None:
    lytics_account(account)
    process(account, {"origin": {"email": "ann@example.com"},
                      "response": {"loyalty_tier": "Gold"}}, stream="crm_users")
    c = token_client(make_token(account, ["admin"])[1])
    with django_capture_on_commit_callbacks(execute=True):
        created = c.post("/api/v1/audiences/", {"name": "Gold", "rule": GOLD}, format="json")
    assert created.status_code == 201, created.content
    run_queued_tasks()
    _check(account, "audience.created")
    with django_capture_on_commit_callbacks(execute=True):
        updated = c.patch("/api/v1/audiences/gold/", {"name": "Gold tier"}, format="json")
    assert updated.status_code == 200, updated.content
    _check(account, "audience.updated")
    assert c.delete("/api/v1/audiences/gold/").status_code == 204
    _check(account, "audience.deleted")
    updated_profile = c.patch("/api/v1/profiles/email/ann@example.com",
                              {"attributes": {"loyalty_tier": "Silver"}}, format="json")
    assert updated_profile.status_code == 202, updated_profile.content
    _check(account, "profile.updated")
    with django_capture_on_commit_callbacks(execute=True):
        deleted = c.delete("/api/v1/profiles/email/ann@example.com")  # a delete request
    assert deleted.status_code == 202, deleted.content
    _check(account, "privacy.requested")
    run_queued_tasks()
    _check(account, "profile.deleted")
    assert AuditEvent.objects.get(action="audience.created").get_action_display() == \
        "Audience Created"
