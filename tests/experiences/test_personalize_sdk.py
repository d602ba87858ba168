"""The real ``@contentstack/personalize-edge-sdk`` (npm, unmodified) in Node against a live
Strata: unknown project, manifest and user uid, variant aliases, attributes, impressions by
experience and by alias, custom events, and a login merge (tests/node/personalize.mjs).

Node's dependencies come from tests/node/package-lock.json (``npm ci``, which ``make test``
runs); skipped only when Node itself is not installed."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest

from cdp_site.models import Account
from experiences import config
from experiences.models import Assignment, Conversion, Impression
from profiles.models import RawEvent
from profiles.schema.lytics import install_lytics_schema
from tests.conftest import make_account
from tests.experiences.tracking_fixtures import ab_test
from tests.profiles.processing import live_profiles, run

pytestmark = [pytest.mark.django_db(transaction=True, serialized_rollback=True)]

NODE_DIR = Path(__file__).resolve().parents[1] / "node"
SDK = NODE_DIR / "node_modules" / "@contentstack" / "personalize-edge-sdk"


def node_ready() -> str:
    node = shutil.which("node")
    if node is None:
        pytest.skip("Node is not installed")
    if not SDK.exists():
        npm = shutil.which("npm")
        assert npm, "npm is missing: install Node's npm (make test runs npm ci in tests/node)"
        subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=NODE_DIR, check=True,
                       capture_output=True, timeout=300)
    return node


def run_sdk(live_server: Any, project: str) -> dict[str, Any]:
    node = node_ready()
    done = subprocess.run(
        [node, "personalize.mjs"], cwd=NODE_DIR, capture_output=True, text=True, timeout=120,
        env={**os.environ, "STRATA_URL": live_server.url, "STRATA_PROJECT": project})
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_personalize_edge_sdk_runs_against_strata(live_server: Any) -> None:
    account: Account = make_account("Node Shop")
    install_lytics_schema(account)
    hero = ab_test(account, goal_event="booked")
    config.invalidate()

    seen = run_sdk(live_server, account.aid)

    assert seen["unknownProject"] == "Project not found: no-such-project"
    user = seen["userId"]
    assert uuid.UUID(user)
    # the manifest's variant is the one stored for the visitor (it has moved to user-42)
    variant = Assignment.objects.get(experience=hero).variant
    assert seen["experiences"] == [{"shortUid": "a", "activeVariantShortUid": variant.uid}]
    assert seen["variants"] == {"a": variant.uid}
    assert seen["activeVariant"] == variant.uid
    assert seen["aliases"] == [f"cs_personalize_a_{variant.uid}"]
    assert seen["variantParam"] == f"a_{variant.uid}"

    # attributes: an identify of the minted user, through the collection core
    identify = RawEvent.objects.get(account=account, type="identify")
    assert identify.anonymous_id == user and identify.source == "personalize"
    assert identify.message["traits"] == {"email": "node@example.com", "plan": "pro"}
    assert identify.message["context"]["library"]["name"] == "personalize-edge-sdk-js"

    # two impressions (by experience uid, then by alias): one visitor, counted twice
    impression = Impression.objects.get(experience=hero)
    assert impression.count == 2 and impression.variant == variant

    # login: the visitor's experiences follow the new user id, which keeps the variant
    assert seen["loggedInUserId"] == "user-42"
    assert seen["loggedInVariants"] == {"a": variant.uid}
    assert Assignment.objects.get(experience=hero).visitor == "user-42"
    assert impression.__class__.objects.get(pk=impression.pk).visitor == "user-42"
    alias = RawEvent.objects.get(account=account, type="alias")
    assert (alias.message["previousId"], alias.message["userId"]) == (user, "user-42")

    # the custom events are track events: after processing, conversions on the variant
    assert list(RawEvent.objects.filter(account=account, type="track")
                .values_list("event", "anonymous_id").order_by("id")) == [
        ("booked", user), ("booked", "user-42")]
    run(account)
    conversion = Conversion.objects.get(experience=hero)
    assert (conversion.visitor, conversion.variant, conversion.count) == (
        "user-42", variant, 2)
    [profile] = live_profiles(account)  # the anonymous and the logged-in uid, one person
    assert sorted(profile.field_values["_uid"]) == sorted([user, "user-42"])
    assert profile.field_values["email"] == "node@example.com"
