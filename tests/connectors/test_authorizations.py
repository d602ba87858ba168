"""Authorizations: encrypted at rest under rotatable keys, shown once, never in audit
entries, refused when malformed, not deletable while a job uses them."""

from __future__ import annotations

from typing import Any

import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command
from django.test import override_settings

from cdp_site.models import AuditEvent
from connectors import authorizations, crypto
from connectors.errors import InvalidInput
from connectors.jobs import create_job
from connectors.models import Authorization
from tests.conftest import system_actor
from tests.connectors.builders import make_audience

pytestmark = pytest.mark.django_db

TOKEN = "sk_live_very_secret_value_123"


def _create(account: Any, **kwargs: Any) -> authorizations.NewAuthorization:
    kwargs.setdefault("secret", {"bearer_token": TOKEN, "headers": {"X-Api-Key": "hdr-secret"}})
    return authorizations.create_authorization(
        account, system_actor(account), name=kwargs.pop("name", "CRM"), kind="http",
        base_url="https://crm.example.com/", **kwargs)


def test_secret_is_encrypted_at_rest_and_signing_secret_shown_once(account: Any) -> None:
    new = _create(account)
    stored = Authorization.objects.get(pk=new.obj.pk)
    assert TOKEN not in stored.secret and "hdr-secret" not in stored.secret
    assert new.signing_secret is not None and new.signing_secret.startswith("whsec_")
    assert new.signing_secret not in stored.secret
    assert stored.secret_parts == ["bearer_token", "headers", "signing_secret"]
    assert authorizations.secret_of(stored)["bearer_token"] == TOKEN


def test_audit_entry_names_parts_never_values(account: Any) -> None:
    new = _create(account)
    entry = AuditEvent.objects.get(account=account, action="authorization.create")
    text = repr(entry.changes) + entry.target_label
    assert TOKEN not in text and "hdr-secret" not in text
    assert new.signing_secret not in text
    assert entry.changes["secret_parts"] == ["bearer_token", "headers", "signing_secret"]


def test_rotation_reencrypts_under_the_newest_key(account: Any, settings: Any) -> None:
    old = Fernet.generate_key().decode()
    settings.STRATA_CONNECTOR_KEYS = [old]
    obj = _create(account).obj
    before = Authorization.objects.get(pk=obj.pk).secret
    new = Fernet.generate_key().decode()
    settings.STRATA_CONNECTOR_KEYS = [new, old]
    call_command("rotate_connector_keys")
    after = Authorization.objects.get(pk=obj.pk).secret
    assert after != before
    with override_settings(STRATA_CONNECTOR_KEYS=[new]):  # the old key can now go
        assert crypto.decrypt(after)["bearer_token"] == TOKEN
    with override_settings(STRATA_CONNECTOR_KEYS=[old]), pytest.raises(Exception) as caught:
        crypto.decrypt(after)
    assert TOKEN not in str(caught.value)


@pytest.mark.parametrize(("secret", "path"), [
    ({"password": "x"}, "secret.password"),
    ({"headers": {"X": 1}}, "secret.headers"),
    ({"headers": {"X": "a\r\nInjected: 1"}}, "secret.headers"),
    ({"basic_username": "u"}, "secret.basic_password"),
    ({"bearer_token": ""}, "secret.bearer_token"),
])
def test_malformed_secret_is_refused_with_its_path(account: Any, secret: Any, path: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        _create(account, secret=secret)
    assert caught.value.path == path
    assert not Authorization.objects.filter(account=account).exists()


def test_postgres_authorization_needs_a_dsn(account: Any) -> None:
    with pytest.raises(InvalidInput) as caught:
        authorizations.create_authorization(account, None, name="DB", kind="postgres",
                                            secret={})
    assert caught.value.path == "secret.dsn"


def test_authorization_in_use_cannot_be_deleted(account: Any) -> None:
    obj = _create(account).obj
    make_audience(account)
    create_job(account, None, name="Export", kind="audience_webhook", authorization_id=obj.pk,
               config={"audience": "gold"})
    with pytest.raises(InvalidInput) as caught:
        authorizations.delete_authorization(obj, None)
    assert caught.value.code == "authorization_in_use"
    assert Authorization.objects.filter(pk=obj.pk).exists()


def test_missing_keys_refuse_to_store(account: Any, settings: Any) -> None:
    settings.STRATA_CONNECTOR_KEYS = []
    with pytest.raises(Exception, match="STRATA_CONNECTOR_KEYS"):
        _create(account)
