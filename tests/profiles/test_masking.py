"""PII masking by kind (ROLES.md: ``j***@example.com``, ``+1-***-**39``) and the policy that
applies it by field for readers without pii.view."""

from __future__ import annotations

import pytest

from cdp_site.tenancy import Actor
from profiles.masking import (
    MASK,
    PiiPolicy,
    mask_email,
    mask_phone,
    mask_text,
    mask_value,
    pii_fields,
    policy_for_actor,
)
from profiles.models import Field
from profiles.schema.drafts import save_field
from profiles.schema.versions import publish


@pytest.mark.parametrize(("value", "masked"), [
    ("john@example.com", "j***@example.com"),
    ("John.Doe+news@mail.example.co.uk", "J***@mail.example.co.uk"),
    ("x@example.com", "x***@example.com"),
    ("  ann@example.com ", "a***@example.com"),
])
def test_emails_keep_their_first_letter_and_domain(value, masked):
    assert mask_email(value) == masked
    assert mask_text(value) == masked


@pytest.mark.parametrize(("value", "masked"), [
    ("+1 555 123 4539", "+1-***-**39"),
    ("+15551234539", "+1-***-**39"),
    ("+44 20 7946 0958", "+44-***-**58"),
    ("+33 1 23 45 67 89", "+33-***-**89"),
    ("(555) 123-4539", "***-**39"),
    ("555.123.4539", "***-**39"),
])
def test_phone_numbers_keep_their_country_code_and_last_two_digits(value, masked):
    assert mask_phone(value) == masked
    assert mask_text(value) == masked


@pytest.mark.parametrize(("value", "masked"), [
    ("Alice", "A***"),
    ("Mason Smith", "M***"),
    ("Al", MASK),
    ("", MASK),
    ("12 Rue de la Paix", "1***"),
    ("123456", "1***"),  # too few digits for a phone number
])
def test_other_text_keeps_its_first_character(value, masked):
    assert mask_text(value) == masked


def test_any_value_is_masked_item_by_item():
    assert mask_value(None) is None
    assert mask_value(42) == MASK
    assert mask_value(3.5) == MASK
    assert mask_value(True) == MASK
    assert mask_value(["ann@example.com", "Bob"]) == ["a***@example.com", "B***"]
    assert mask_value({"ann@example.com": 3}) == {"a***@example.com": MASK}


def test_a_policy_masks_only_pii_fields_and_only_when_not_allowed():
    masked = PiiPolicy(frozenset({"email", "phone"}), unmasked=False)
    values = {"email": "ann@example.com", "phone": "+1 555 123 4539", "tier": "gold",
              "_uid": ["c-1"]}
    assert masked.fields(values) == {"email": "a***@example.com", "phone": "+1-***-**39",
                                     "tier": "gold", "_uid": ["c-1"]}
    assert masked.identifiers({"email": ["ann@example.com"], "_uid": ["c-1"]}) == {
        "email": ["a***@example.com"], "_uid": ["c-1"]}
    assert masked.masking and masked.masks("email") and not masked.masks("tier")
    clear = PiiPolicy(frozenset({"email"}), unmasked=True)
    assert clear.fields(values) == values and not clear.masking
    assert not PiiPolicy(frozenset(), unmasked=False).masking


@pytest.mark.django_db
def test_pii_fields_come_from_the_live_schema_and_the_draft(account):
    email = save_field(account, name="email", type="string", merge_operator="latest",
                       is_pii=True)
    save_field(account, name="tier", type="string", merge_operator="latest")
    publish(account)
    assert pii_fields(account) == {"email"}
    tier = Field.objects.get(account=account, name="tier")
    save_field(account, instance=tier, is_pii=True)  # draft only: masked at once
    save_field(account, instance=email, is_pii=False)  # unmarked: not until published
    assert pii_fields(account) == {"email", "tier"}
    publish(account)
    assert pii_fields(account) == {"tier"}


@pytest.mark.django_db
def test_the_actor_policy_follows_pii_view(account):
    save_field(account, name="email", type="string", merge_operator="latest",
               is_pii=True)
    reader = Actor(account=account, permissions=frozenset({"profiles.view"}))
    manager = Actor(account=account, permissions=frozenset({"profiles.view", "pii.view"}))
    assert policy_for_actor(reader).masks("email")
    assert not policy_for_actor(manager).masks("email")
