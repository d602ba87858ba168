"""The role matrix of ROLES.md: seeded as data, and enforced by the API for every role.

The table below is transcribed by hand from ../shared/ROLES.md on purpose: it must not be
imported from cdp_site.roles, so a mistake there (or in the seed migration) cannot hide itself.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

from cdp_site.models import AccessToken, Account, AuditEvent, Membership, Permission, Role
from cdp_site.tenancy import permissions_for_roles
from profiles.schema.drafts import save_field, save_mapping, save_route_rule
from profiles.schema.versions import publish
from tests.conftest import audit_events, make_token, make_user, make_write_key, token_client

# ROLES.md, "Abbreviations": abbreviation -> (role code, role name)
ROLES_MD_ROLES: dict[str, tuple[str, str]] = {
    "Adm": ("admin", "Admin"),
    "AuM": ("audience_manager", "Audience Manager"),
    "CaM": ("campaign_manager", "Campaign Manager"),
    "CoM": ("content_manager", "Content Manager"),
    "DaM": ("data_manager", "Data Manager"),
    "DiI": ("discovery_insights", "Discovery Insights"),
    "ExM": ("experience_manager", "Experience Manager"),
    "GoM": ("goal_manager", "Goal Manager"),
    "Mkt": ("marketer", "Marketer"),
    "Obs": ("observer", "Observer"),
    "USe": ("user_search", "User Search"),
}

# ROLES.md, the table, cell by cell: permission code -> the cell's roles, as written there.
# Columns: view -> .view, "create / edit / duplicate" -> .edit, "delete / other" -> .delete
# (or the named "other" action). A "—" cell has no permission.
ROLES_MD_MATRIX: dict[str, str] = {
    # | dashboard | all roles | — | — |
    "dashboard.view": "all roles",
    # | PII (fields marked PII, shown unmasked) | Adm DaM USe | — | — |
    "pii.view": "Adm DaM USe",
    # | profile search, profile view | Adm DaM USe | — | GDPR profile delete: Adm DaM |
    "profiles.view": "Adm DaM USe",
    "profiles.delete": "Adm DaM",
    # | streams, raw keys, failed events, schema (...) | Adm DaM | Adm DaM (publish, rebuild
    #   too) | Adm DaM |
    "schema.view": "Adm DaM",
    "schema.edit": "Adm DaM",
    "schema.delete": "Adm DaM",
    # | audiences | Adm AuM CaM DiI ExM GoM Mkt Obs | Adm AuM CaM ExM GoM Mkt |
    #   Adm AuM CaM ExM GoM |
    "audiences.view": "Adm AuM CaM DiI ExM GoM Mkt Obs",
    "audiences.edit": "Adm AuM CaM ExM GoM Mkt",
    "audiences.delete": "Adm AuM CaM ExM GoM",
    # | experiences (A/B, bandit, segmented) | Adm CaM ExM GoM Mkt Obs |
    #   Adm CaM ExM Mkt (activate, pause too) | Adm CaM ExM |
    "experiences.view": "Adm CaM ExM GoM Mkt Obs",
    "experiences.edit": "Adm CaM ExM Mkt",
    "experiences.delete": "Adm CaM ExM",
    # | goals (conversion events) | Adm GoM ExM CaM Mkt Obs | Adm GoM | Adm GoM |
    "goals.view": "Adm GoM ExM CaM Mkt Obs",
    "goals.edit": "Adm GoM",
    "goals.delete": "Adm GoM",
    # | content (topics, collections) | Adm CaM CoM DaM | Adm CaM CoM |
    #   Adm CaM; topic blocklist: Adm CoM |
    "content.view": "Adm CaM CoM DaM",
    "content.edit": "Adm CaM CoM",
    "content.delete": "Adm CaM",
    "content.blocklist": "Adm CoM",
    # | authorizations, jobs | Adm CaM DaM ExM GoM | Adm CaM DaM ExM GoM (pause, resume too) |
    #   Adm CaM DaM ExM GoM |
    "jobs.view": "Adm CaM DaM ExM GoM",
    "jobs.edit": "Adm CaM DaM ExM GoM",
    "jobs.delete": "Adm CaM DaM ExM GoM",
    # | accounts, users, roles, access tokens, account usage, audit log | Adm | Adm | Adm |
    "admin.view": "Adm",
    "admin.edit": "Adm",
    "admin.delete": "Adm",
    # | lookalike / predictive models | Adm CaM | Adm | Adm |
    "models.view": "Adm CaM",
    "models.edit": "Adm",
    "models.delete": "Adm",
}

ROLE_CODES = sorted(code for code, _name in ROLES_MD_ROLES.values())


def holders(permission: str) -> set[str]:
    """Role codes holding a permission according to the transcribed table."""
    cell = ROLES_MD_MATRIX[permission]
    abbreviations = ROLES_MD_ROLES if cell == "all roles" else cell.split()
    return {ROLES_MD_ROLES[abbreviation][0] for abbreviation in abbreviations}


# --- (a) the seeded data is the table -------------------------------------------------------


@pytest.mark.django_db
def test_seeded_roles_are_the_eleven_roles_of_roles_md():
    seeded = {(r.abbreviation, r.code, r.name) for r in Role.objects.all()}
    assert seeded == {(abbr, code, name) for abbr, (code, name) in ROLES_MD_ROLES.items()}


@pytest.mark.django_db
def test_seeded_permissions_are_the_cells_of_roles_md():
    assert set(Permission.objects.values_list("code", flat=True)) == set(ROLES_MD_MATRIX)
    for permission in Permission.objects.all():
        assert f"{permission.feature}.{permission.action}" == permission.code
        assert permission.description


@pytest.mark.django_db
@pytest.mark.parametrize("permission", sorted(ROLES_MD_MATRIX))
def test_seeded_permission_is_held_by_exactly_the_roles_of_its_cell(permission):
    seeded = set(Role.objects.filter(permissions__code=permission).values_list("code", flat=True))
    assert seeded == holders(permission)


@pytest.mark.django_db
@pytest.mark.parametrize("role", ROLE_CODES)
def test_seeded_role_holds_exactly_the_permissions_the_table_gives_it(role):
    seeded = set(Permission.objects.filter(roles__code=role).values_list("code", flat=True))
    assert seeded == {code for code in ROLES_MD_MATRIX if role in holders(code)}


@pytest.mark.django_db
def test_an_admin_may_do_everything():
    assert permissions_for_roles(frozenset({"admin"})) == set(ROLES_MD_MATRIX)


@pytest.mark.django_db
def test_permissions_of_several_roles_add_up():
    roles = frozenset({"observer", "user_search", "content_manager"})
    expected = {code for code in ROLES_MD_MATRIX if holders(code) & roles}
    assert permissions_for_roles(roles) == expected


@pytest.mark.django_db
def test_no_roles_grant_nothing():
    assert permissions_for_roles(frozenset()) == frozenset()


# --- (b) the matrix walked through the API --------------------------------------------------


@dataclass
class Targets:
    """Objects of the requester's own account for the detail endpoints to act on."""

    account: Account
    role: str
    token: AccessToken
    membership: Membership
    write_key_id: int
    audit_event_id: int
    field_id: int
    mapping_id: int
    route_rule_id: int
    version_number: int


@dataclass(frozen=True)
class EndpointCase:
    permission: str
    name: str
    perform: Callable[[APIClient, Targets], Any]


PERSON = "walker@example.com"
WALK_RULE = {"field": "tier", "op": "=", "value": "gold"}


def _person(t: Targets) -> int:
    """A profile made by the pipeline, its email a PII identifier; its id."""
    from profiles.processing.identity import find_profile
    from tests.profiles.processing import identity_schema, run, send

    identity_schema(t.account, stream="web", extra=False)
    send(t.account, {"email": PERSON, "_uid": "walker-cookie"}, stream="web")
    run(t.account)
    return find_profile(t.account, "email", PERSON).pk


def _unmasked_profile(c: APIClient, t: Targets) -> Any:
    """Read a profile; when allowed, its PII comes unmasked."""
    _person(t)
    response = c.get(f"/api/v1/profiles/email/{PERSON}")
    if response.status_code == 200:
        assert response.json()["fields"]["email"] == PERSON
        assert response.json()["pii_masked"] is False
    return response


def _calculated(t: Targets) -> str:
    """A calculated attribute (audience permissions); its name."""
    from profiles.calculated.attributes import save_attribute

    return save_attribute(t.account, {"name": "walk_views", "aggregate": "count",
                                      "event": "page", "window_days": 7}).name


def _goal(t: Targets) -> str:
    from experiences import lifecycle

    return lifecycle.create_goal(t.account, key="booked", event="booked").key


def _experience(t: Targets) -> str:
    """A draft A/B test that can be activated; its key."""
    from experiences import lifecycle

    return lifecycle.create_experience(
        t.account, key="hero", name="Hero", goals=[_goal(t)],
        variants=[{"key": "control", "base": True}, {"key": "bold"}]).key


def _audience(t: Targets) -> str:
    """An audience over the targets' `tier` field (computed by nobody: no task runs); its slug."""
    from audiences.editing import create_audience

    return create_audience(t.account, None, name="Walk tier", rule=WALK_RULE,
                           compute=False).slug


def _new_user_email(t: Targets) -> str:
    username = f"newcomer-{t.role}"
    get_user_model().objects.create_user(username, email=f"{username}@example.com")
    return f"{username}@example.com"


# Rows walked through HTTP: permission code -> the requests that need it. Later issues add
# rows here (audiences.view -> GET /api/v1/audiences/, ...) and remove them from UNWALKED below.
ENDPOINTS: list[EndpointCase] = [
    # dashboard: every role
    EndpointCase("dashboard.view", "GET dashboard", lambda c, t: c.get("/api/v1/dashboard/")),
    EndpointCase("dashboard.view", "GET roles", lambda c, t: c.get("/api/v1/roles/")),
    # accounts, users, roles, access tokens, account usage, audit log: Admin only
    EndpointCase("admin.view", "GET account", lambda c, t: c.get("/api/v1/account/")),
    EndpointCase("admin.view", "GET tokens", lambda c, t: c.get("/api/v1/tokens/")),
    EndpointCase(
        "admin.view", "GET token", lambda c, t: c.get(f"/api/v1/tokens/{t.token.pk}/")
    ),
    EndpointCase("admin.view", "GET memberships", lambda c, t: c.get("/api/v1/memberships/")),
    EndpointCase(
        "admin.view", "GET membership",
        lambda c, t: c.get(f"/api/v1/memberships/{t.membership.pk}/"),
    ),
    EndpointCase("admin.view", "GET write-keys", lambda c, t: c.get("/api/v1/write-keys/")),
    EndpointCase(
        "admin.view", "GET write-key",
        lambda c, t: c.get(f"/api/v1/write-keys/{t.write_key_id}/"),
    ),
    EndpointCase("admin.view", "GET audit-log", lambda c, t: c.get("/api/v1/audit-log/")),
    EndpointCase(
        "admin.view", "GET audit event",
        lambda c, t: c.get(f"/api/v1/audit-log/{t.audit_event_id}/"),
    ),
    EndpointCase(
        "admin.edit", "PATCH account",
        lambda c, t: c.patch("/api/v1/account/", {"timezone": "Europe/Paris"}, format="json"),
    ),
    EndpointCase(
        "admin.edit", "POST tokens",
        lambda c, t: c.post(
            "/api/v1/tokens/", {"description": "walk", "roles": [t.role]}, format="json"
        ),
    ),
    EndpointCase(
        "admin.edit", "PATCH token",
        lambda c, t: c.patch(
            f"/api/v1/tokens/{t.token.pk}/", {"description": "renamed"}, format="json"
        ),
    ),
    EndpointCase(
        "admin.edit", "POST memberships",
        lambda c, t: c.post(
            "/api/v1/memberships/", {"email": _new_user_email(t), "roles": ["observer"]},
            format="json",
        ),
    ),
    EndpointCase(
        "admin.edit", "PATCH membership",
        lambda c, t: c.patch(
            f"/api/v1/memberships/{t.membership.pk}/", {"roles": ["marketer"]}, format="json"
        ),
    ),
    EndpointCase(
        "admin.edit", "POST write-keys",
        lambda c, t: c.post("/api/v1/write-keys/", {"name": "Shop"}, format="json"),
    ),
    EndpointCase(
        "admin.delete", "DELETE token", lambda c, t: c.delete(f"/api/v1/tokens/{t.token.pk}/")
    ),
    EndpointCase(
        "admin.delete", "DELETE membership",
        lambda c, t: c.delete(f"/api/v1/memberships/{t.membership.pk}/"),
    ),
    EndpointCase(
        "admin.delete", "DELETE write-key",
        lambda c, t: c.delete(f"/api/v1/write-keys/{t.write_key_id}/"),
    ),
    # schema (fields, mappings, route rules, versions): Admin and Data Manager
    EndpointCase("schema.view", "GET fields", lambda c, t: c.get("/api/v1/schema/fields/")),
    EndpointCase(
        "schema.view", "GET field", lambda c, t: c.get(f"/api/v1/schema/fields/{t.field_id}/")
    ),
    EndpointCase("schema.view", "GET mappings", lambda c, t: c.get("/api/v1/schema/mappings/")),
    EndpointCase(
        "schema.view", "GET mapping",
        lambda c, t: c.get(f"/api/v1/schema/mappings/{t.mapping_id}/"),
    ),
    EndpointCase(
        "schema.view", "GET route-rules", lambda c, t: c.get("/api/v1/schema/route-rules/")
    ),
    EndpointCase("schema.view", "GET validate", lambda c, t: c.get("/api/v1/schema/validate/")),
    EndpointCase("schema.view", "GET diff", lambda c, t: c.get("/api/v1/schema/diff/")),
    EndpointCase("schema.view", "GET versions", lambda c, t: c.get("/api/v1/schema/versions/")),
    EndpointCase(
        "schema.view", "GET version",
        lambda c, t: c.get(f"/api/v1/schema/versions/{t.version_number}/"),
    ),
    EndpointCase(
        "schema.view", "POST evaluate",
        lambda c, t: c.post(
            "/api/v1/schema/evaluate/", {"mapping": t.mapping_id}, format="json"
        ),
    ),
    EndpointCase("schema.view", "GET rebuild", lambda c, t: c.get("/api/v1/schema/rebuild/")),
    EndpointCase(
        "schema.edit", "POST field",
        lambda c, t: c.post(
            "/api/v1/schema/fields/", {"name": "score", "type": "number",
                                       "merge_operator": "max"}, format="json"
        ),
    ),
    EndpointCase(
        "schema.edit", "PATCH field",
        lambda c, t: c.patch(
            f"/api/v1/schema/fields/{t.field_id}/", {"keep_days": 30}, format="json"
        ),
    ),
    EndpointCase(
        "schema.edit", "POST mapping",
        lambda c, t: c.post(
            "/api/v1/schema/mappings/", {"field": "tier", "stream": "crm_users",
                                         "expression": "response.loyalty_tier"}, format="json"
        ),
    ),
    EndpointCase(
        "schema.edit", "PATCH mapping",
        lambda c, t: c.patch(
            f"/api/v1/schema/mappings/{t.mapping_id}/", {"expression": "tolower(tier)"},
            format="json",
        ),
    ),
    EndpointCase(
        "schema.edit", "POST route-rule",
        lambda c, t: c.post(
            "/api/v1/schema/route-rules/", {"input_stream": "default",
                                            "expression": 'contains(`_url`, "localhost")',
                                            "output_stream": "app_divert"}, format="json"
        ),
    ),
    EndpointCase(
        "schema.edit", "PATCH route-rule",
        lambda c, t: c.patch(
            f"/api/v1/schema/route-rules/{t.route_rule_id}/", {"priority": 5}, format="json"
        ),
    ),
    EndpointCase(
        "schema.edit", "POST publish",
        lambda c, t: c.post("/api/v1/schema/publish/", {"note": "walk"}, format="json"),
    ),
    EndpointCase(
        "schema.edit", "POST revert",
        lambda c, t: c.post(f"/api/v1/schema/versions/{t.version_number}/revert/", {},
                            format="json"),
    ),
    EndpointCase(
        "schema.edit", "POST rebuild", lambda c, t: c.post("/api/v1/schema/rebuild/")
    ),
    EndpointCase(
        "schema.delete", "DELETE field",
        lambda c, t: c.delete(f"/api/v1/schema/fields/{t.field_id}/"),
    ),
    EndpointCase(
        "schema.delete", "DELETE mapping",
        lambda c, t: c.delete(f"/api/v1/schema/mappings/{t.mapping_id}/"),
    ),
    EndpointCase(
        "schema.delete", "DELETE route-rule",
        lambda c, t: c.delete(f"/api/v1/schema/route-rules/{t.route_rule_id}/"),
    ),
    # profile search and view: Admin, Data Manager, User Search; GDPR delete: Admin, DaM
    EndpointCase("profiles.view", "GET profiles search",
                 lambda c, t: c.get("/api/v1/profiles/", {"q": PERSON})),
    EndpointCase(
        "profiles.view", "GET profile by identifier",
        lambda c, t: (_person(t), c.get("/api/v1/profiles/_uid/walker-cookie"))[1],
    ),
    EndpointCase("profiles.view", "GET profile events",
                 lambda c, t: c.get(f"/api/v1/profiles/{_person(t)}/events")),
    EndpointCase("profiles.view", "GET profile identity",
                 lambda c, t: c.get(f"/api/v1/profiles/{_person(t)}/identity")),
    EndpointCase(
        "profiles.delete", "DELETE profile",
        lambda c, t: (_person(t), c.delete(f"/api/v1/profiles/email/{PERSON}"))[1],
    ),
    # PII shown unmasked: Admin, Data Manager, User Search
    EndpointCase("pii.view", "GET profile, PII unmasked", _unmasked_profile),
    # audiences
    EndpointCase("audiences.view", "GET audiences", lambda c, t: c.get("/api/v1/audiences/")),
    EndpointCase("audiences.view", "GET audience",
                 lambda c, t: c.get(f"/api/v1/audiences/{_audience(t)}/")),
    EndpointCase("audiences.view", "GET audience members",
                 lambda c, t: c.get(f"/api/v1/audiences/{_audience(t)}/members/")),
    EndpointCase("audiences.view", "GET audience size",
                 lambda c, t: c.get(f"/api/v1/audiences/{_audience(t)}/size/")),
    EndpointCase("audiences.view", "POST audience validate",
                 lambda c, t: c.post("/api/v1/audiences/validate/", {"rule": WALK_RULE},
                                     format="json")),
    EndpointCase("audiences.view", "GET a profile's audiences",
                 lambda c, t: c.get(f"/api/v1/audiences/for-profile/{_person(t)}/")),
    EndpointCase("audiences.edit", "POST audience",
                 lambda c, t: c.post("/api/v1/audiences/", {"name": "Walk", "rule": WALK_RULE},
                                     format="json")),
    EndpointCase("audiences.edit", "PATCH audience",
                 lambda c, t: c.patch(f"/api/v1/audiences/{_audience(t)}/",
                                      {"text": 'tier = "silver"'}, format="json")),
    EndpointCase("audiences.edit", "POST audience compute",
                 lambda c, t: c.post(f"/api/v1/audiences/{_audience(t)}/compute/")),
    EndpointCase("audiences.delete", "DELETE audience",
                 lambda c, t: c.delete(f"/api/v1/audiences/{_audience(t)}/")),
    # calculated attributes (read by audience rules): the audience permissions
    EndpointCase("audiences.view", "GET calculated-attributes",
                 lambda c, t: c.get("/api/v1/calculated-attributes/")),
    EndpointCase("audiences.view", "GET calculated-attribute",
                 lambda c, t: c.get(f"/api/v1/calculated-attributes/{_calculated(t)}/")),
    EndpointCase(
        "audiences.edit", "POST calculated-attribute",
        lambda c, t: c.post("/api/v1/calculated-attributes/",
                            {"name": "walked", "aggregate": "count", "event": "page",
                             "window_days": 7}, format="json"),
    ),
    EndpointCase(
        "audiences.edit", "PATCH calculated-attribute",
        lambda c, t: c.patch(f"/api/v1/calculated-attributes/{_calculated(t)}/",
                             {"window_days": 30}, format="json"),
    ),
    EndpointCase("audiences.delete", "DELETE calculated-attribute",
                 lambda c, t: c.delete(f"/api/v1/calculated-attributes/{_calculated(t)}/")),
    # experiences (A/B, bandit, segmented): view Adm CaM ExM GoM Mkt Obs; create, edit,
    # activate, pause: Adm CaM ExM Mkt; delete: Adm CaM ExM
    EndpointCase("experiences.view", "GET experiences",
                 lambda c, t: c.get("/api/v1/experiences/")),
    EndpointCase("experiences.view", "GET experience phases",
                 lambda c, t: c.get(f"/api/v1/experiences/{_experience(t)}/phases/")),
    EndpointCase(
        "experiences.edit", "POST experience",
        lambda c, t: c.post("/api/v1/experiences/", {"key": "walk", "name": "Walk"},
                            format="json"),
    ),
    EndpointCase("experiences.edit", "POST experience activate",
                 lambda c, t: c.post(f"/api/v1/experiences/{_experience(t)}/activate/")),
    EndpointCase("experiences.delete", "DELETE experience",
                 lambda c, t: c.delete(f"/api/v1/experiences/{_experience(t)}/")),
    # goals (conversion events): view Adm GoM ExM CaM Mkt Obs; edit, delete: Adm GoM
    EndpointCase("goals.view", "GET goals", lambda c, t: c.get("/api/v1/goals/")),
    EndpointCase(
        "goals.edit", "POST goal",
        lambda c, t: c.post("/api/v1/goals/", {"key": "walked", "event": "walked"},
                            format="json"),
    ),
    EndpointCase("goals.delete", "DELETE goal",
                 lambda c, t: c.delete(f"/api/v1/goals/{_goal(t)}/")),
]

WALKED = {case.permission for case in ENDPOINTS}
# Rows with no endpoint yet: checked through permissions_for_roles only (see the last test).
UNWALKED = sorted(set(ROLES_MD_MATRIX) - WALKED)


def _targets(account: Account, role: str) -> Targets:
    token, _secret = make_token(account, ["observer"], description="target")
    member = make_user("member", account, roles=["observer"])
    write_key, _key = make_write_key(account)
    # A schema with two published versions and a draft that differs from the live one, so
    # publishing and reverting to version 1 both have something to do.
    field = save_field(account, name="tier", type="string", merge_operator="latest")
    mapping = save_mapping(account, field=field, stream="web", expression="tier")
    rule = save_route_rule(account, input_stream="web", expression="exists(bot)",
                           output_stream="bots")
    first = publish(account)
    save_field(account, instance=field, description="Loyalty tier")
    publish(account)
    save_field(account, instance=field, is_pii=True)
    return Targets(
        account=account, role=role, token=token,
        membership=Membership.objects.get(account=account, user=member),
        write_key_id=write_key.pk,
        audit_event_id=audit_events(account)[0].pk,
        field_id=field.pk, mapping_id=mapping.pk, route_rule_id=rule.pk,
        version_number=first.number,
    )


@pytest.mark.django_db
@pytest.mark.parametrize("case", ENDPOINTS, ids=lambda case: f"{case.permission}:{case.name}")
@pytest.mark.parametrize("role", ROLE_CODES)
def test_role_may_call_endpoint_exactly_when_the_matrix_allows(role, case, account):
    targets = _targets(account, role)
    _token, secret = make_token(account, [role], description=f"{role} token")
    events_before = AuditEvent.objects.for_account(account).count()

    response = case.perform(token_client(secret), targets)

    if role in holders(case.permission):
        assert response.status_code != 403, response.content
        assert 200 <= response.status_code < 300, response.content
    else:
        assert response.status_code == 403, response.content
        assert response.json()["code"] == "permission_denied"
        # A refused request changes nothing.
        assert AuditEvent.objects.for_account(account).count() == events_before


def test_every_walked_row_has_both_an_allowed_and_a_denied_role_or_is_open_to_all():
    for permission in WALKED:
        assert holders(permission), permission
        assert holders(permission) != set(ROLE_CODES) or permission == "dashboard.view"


@pytest.mark.django_db
@pytest.mark.parametrize("permission", UNWALKED)
def test_permission_without_endpoint_resolves_for_exactly_the_roles_of_its_cell(permission):
    # Not walked through HTTP yet (no endpoint): the permission resolution every endpoint
    # will use must already agree with the table, role by role.
    granted = {
        role for role in ROLE_CODES if permission in permissions_for_roles(frozenset({role}))
    }
    assert granted == holders(permission)
