"""The role matrix of ROLES.md, as data.

The seed migration (0002_seed_roles) carries a frozen copy of this table; a test checks that the
database, this module and ROLES.md agree. Code asks for permissions by code
(``"audiences.edit"``) and never by role name.
"""

from __future__ import annotations

ROLES: list[tuple[str, str, str]] = [
    # (code, name, abbreviation)
    ("admin", "Admin", "Adm"),
    ("audience_manager", "Audience Manager", "AuM"),
    ("campaign_manager", "Campaign Manager", "CaM"),
    ("content_manager", "Content Manager", "CoM"),
    ("data_manager", "Data Manager", "DaM"),
    ("discovery_insights", "Discovery Insights", "DiI"),
    ("experience_manager", "Experience Manager", "ExM"),
    ("goal_manager", "Goal Manager", "GoM"),
    ("marketer", "Marketer", "Mkt"),
    ("observer", "Observer", "Obs"),
    ("user_search", "User Search", "USe"),
]

ALL = "Adm AuM CaM CoM DaM DiI ExM GoM Mkt Obs USe"

# permission code -> (description, roles holding it)
MATRIX: dict[str, tuple[str, str]] = {
    "dashboard.view": ("View the dashboard", ALL),
    "pii.view": ("See fields marked PII unmasked", "Adm DaM USe"),
    "profiles.view": ("Search and view profiles", "Adm DaM USe"),
    "profiles.delete": ("Delete a profile (GDPR)", "Adm DaM"),
    "schema.view": ("View streams, raw keys, failed events and the schema", "Adm DaM"),
    "schema.edit": ("Edit streams and the schema; publish, rebuild", "Adm DaM"),
    "schema.delete": ("Delete streams, fields, mappings, route rules", "Adm DaM"),
    "audiences.view": ("View audiences", "Adm AuM CaM DiI ExM GoM Mkt Obs"),
    "audiences.edit": ("Create, edit, duplicate audiences", "Adm AuM CaM ExM GoM Mkt"),
    "audiences.delete": ("Delete audiences", "Adm AuM CaM ExM GoM"),
    "experiences.view": ("View experiences and results", "Adm CaM ExM GoM Mkt Obs"),
    "experiences.edit": ("Create, edit, activate, pause experiences", "Adm CaM ExM Mkt"),
    "experiences.delete": ("Delete experiences", "Adm CaM ExM"),
    "goals.view": ("View goals", "Adm GoM ExM CaM Mkt Obs"),
    "goals.edit": ("Create and edit goals", "Adm GoM"),
    "goals.delete": ("Delete goals", "Adm GoM"),
    "content.view": ("View content topics and collections", "Adm CaM CoM DaM"),
    "content.edit": ("Create and edit content collections", "Adm CaM CoM"),
    "content.delete": ("Delete content collections", "Adm CaM"),
    "content.blocklist": ("Edit the topic blocklist", "Adm CoM"),
    "jobs.view": ("View authorizations and jobs", "Adm CaM DaM ExM GoM"),
    "jobs.edit": ("Create, edit, pause, resume jobs and authorizations", "Adm CaM DaM ExM GoM"),
    "jobs.delete": ("Delete jobs and authorizations", "Adm CaM DaM ExM GoM"),
    "admin.view": ("View accounts, users, roles, tokens, usage, the audit log", "Adm"),
    "admin.edit": ("Manage accounts, users, roles, tokens", "Adm"),
    "admin.delete": ("Remove users, revoke tokens", "Adm"),
    "models.view": ("View lookalike and predictive models", "Adm CaM"),
    "models.edit": ("Create and edit models", "Adm"),
    "models.delete": ("Delete models", "Adm"),
}


def roles_holding(code: str) -> set[str]:
    """Role codes that hold a permission code, by the matrix."""
    abbreviation_to_code = {abbr: role for role, _name, abbr in ROLES}
    return {abbreviation_to_code[abbr] for abbr in MATRIX[code][1].split()}
