"""The demo accounts `make run` creates: an admin user who belongs to two accounts."""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction

from cdp_site import access
from cdp_site import accounts as accounts_service
from cdp_site.models import Account, Membership, Role
from cdp_site.tenancy import Actor

# The main account sorts first: it is where a new session lands, and where the demo events go.
DEMO_ACCOUNTS = [("Demo Travel", "demo"), ("Demo Travel Sandbox", "demo-sandbox")]
DEMO_USER = "admin"


@dataclass
class DemoCredentials:
    url: str
    username: str
    password: str
    write_key: str
    account_aid: str


@transaction.atomic
def seed_demo(credentials_file: Path | None = None) -> DemoCredentials:
    """Idempotent: the first run creates the accounts, the user and a write key and keeps their
    secrets in var/demo.json (a development file); later runs print the same ones."""
    path = credentials_file or settings.VAR_DIR / "demo.json"
    stored = json.loads(path.read_text()) if path.exists() else {}
    admin_role = Role.objects.get(code="admin")
    accounts = []
    for name, slug in DEMO_ACCOUNTS:
        account = Account.objects.filter(slug=slug).first()
        if account is None:
            account = accounts_service.create_account(name=name, slug=slug)
        accounts.append(account)
    users = get_user_model().objects
    user = users.filter(username=DEMO_USER).first()
    password = stored.get("password")
    if user is None or not password or not user.check_password(password):
        password = secrets.token_urlsafe(12)
        if user is None:
            user = users.create_user(DEMO_USER, email="admin@example.com", password=password)
        else:
            user.set_password(password)
            user.save(update_fields=["password"])
    for account in accounts:
        membership, _ = Membership.objects.get_or_create(account=account, user=user)
        membership.roles.add(admin_role)
    main = accounts[0]
    write_key = stored.get("write_key")
    if not write_key or access.authenticate_write_key(write_key) is None:
        actor = Actor(account=main, user=user, role_codes=frozenset({"admin"}))
        write_key = access.create_write_key(
            account=main, actor=actor, name="Demo website", stream="default"
        ).secret
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"password": password, "write_key": write_key}))
    path.chmod(0o600)
    return DemoCredentials(
        url=f"{settings.STRATA_PUBLIC_URL}/admin/", username=DEMO_USER, password=password,
        write_key=write_key, account_aid=main.aid,
    )

