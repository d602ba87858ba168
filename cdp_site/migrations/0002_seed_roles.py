"""Seed the role matrix of ROLES.md (a frozen copy of cdp_site/roles.py), make an account's
aid immutable in the database, and schedule the worker heartbeat."""

from django.db import migrations

ROLES = [('admin', 'Admin', 'Adm'),
 ('audience_manager', 'Audience Manager', 'AuM'),
 ('campaign_manager', 'Campaign Manager', 'CaM'),
 ('content_manager', 'Content Manager', 'CoM'),
 ('data_manager', 'Data Manager', 'DaM'),
 ('discovery_insights', 'Discovery Insights', 'DiI'),
 ('experience_manager', 'Experience Manager', 'ExM'),
 ('goal_manager', 'Goal Manager', 'GoM'),
 ('marketer', 'Marketer', 'Mkt'),
 ('observer', 'Observer', 'Obs'),
 ('user_search', 'User Search', 'USe')]

MATRIX = {'dashboard.view': ('View the dashboard', 'Adm AuM CaM CoM DaM DiI ExM GoM Mkt Obs USe'),
 'pii.view': ('See fields marked PII unmasked', 'Adm DaM USe'),
 'profiles.view': ('Search and view profiles', 'Adm DaM USe'),
 'profiles.delete': ('Delete a profile (GDPR)', 'Adm DaM'),
 'schema.view': ('View streams, raw keys, failed events and the schema', 'Adm DaM'),
 'schema.edit': ('Edit streams and the schema; publish, rebuild', 'Adm DaM'),
 'schema.delete': ('Delete streams, fields, mappings, route rules', 'Adm DaM'),
 'audiences.view': ('View audiences', 'Adm AuM CaM DiI ExM GoM Mkt Obs'),
 'audiences.edit': ('Create, edit, duplicate audiences', 'Adm AuM CaM ExM GoM Mkt'),
 'audiences.delete': ('Delete audiences', 'Adm AuM CaM ExM GoM'),
 'experiences.view': ('View experiences and results', 'Adm CaM ExM GoM Mkt Obs'),
 'experiences.edit': ('Create, edit, activate, pause experiences', 'Adm CaM ExM Mkt'),
 'experiences.delete': ('Delete experiences', 'Adm CaM ExM'),
 'goals.view': ('View goals', 'Adm GoM ExM CaM Mkt Obs'),
 'goals.edit': ('Create and edit goals', 'Adm GoM'),
 'goals.delete': ('Delete goals', 'Adm GoM'),
 'content.view': ('View content topics and collections', 'Adm CaM CoM DaM'),
 'content.edit': ('Create and edit content collections', 'Adm CaM CoM'),
 'content.delete': ('Delete content collections', 'Adm CaM'),
 'content.blocklist': ('Edit the topic blocklist', 'Adm CoM'),
 'jobs.view': ('View authorizations and jobs', 'Adm CaM DaM ExM GoM'),
 'jobs.edit': ('Create, edit, pause, resume jobs and authorizations', 'Adm CaM DaM ExM GoM'),
 'jobs.delete': ('Delete jobs and authorizations', 'Adm CaM DaM ExM GoM'),
 'admin.view': ('View accounts, users, roles, tokens, usage, the audit log', 'Adm'),
 'admin.edit': ('Manage accounts, users, roles, tokens', 'Adm'),
 'admin.delete': ('Remove users, revoke tokens', 'Adm'),
 'models.view': ('View lookalike and predictive models', 'Adm CaM'),
 'models.edit': ('Create and edit models', 'Adm'),
 'models.delete': ('Delete models', 'Adm')}

AID_TRIGGER = """
CREATE OR REPLACE FUNCTION cdp_site_account_aid_immutable() RETURNS trigger AS $$
BEGIN
    IF NEW.aid IS DISTINCT FROM OLD.aid THEN
        RAISE EXCEPTION 'an account''s aid never changes (% -> %)', OLD.aid, NEW.aid;
    END IF;
    RETURN NEW;
END $$ LANGUAGE plpgsql;
CREATE TRIGGER cdp_site_account_aid_immutable BEFORE UPDATE OF aid ON cdp_site_account
    FOR EACH ROW EXECUTE FUNCTION cdp_site_account_aid_immutable();
"""
DROP_AID_TRIGGER = """
DROP TRIGGER IF EXISTS cdp_site_account_aid_immutable ON cdp_site_account;
DROP FUNCTION IF EXISTS cdp_site_account_aid_immutable();
"""


def seed_roles(apps, schema_editor):
    Role = apps.get_model("cdp_site", "Role")
    Permission = apps.get_model("cdp_site", "Permission")
    by_abbreviation = {}
    for code, name, abbreviation in ROLES:
        role, _ = Role.objects.update_or_create(
            code=code, defaults={"name": name, "abbreviation": abbreviation}
        )
        by_abbreviation[abbreviation] = role
    for code, (description, holders) in MATRIX.items():
        feature, action = code.split(".")
        permission, _ = Permission.objects.update_or_create(
            code=code,
            defaults={"feature": feature, "action": action, "description": description},
        )
        permission.roles.set([by_abbreviation[abbreviation] for abbreviation in holders.split()])


def schedule_heartbeat(apps, schema_editor):
    Schedule = apps.get_model("django_q", "Schedule")
    Schedule.objects.update_or_create(
        name="strata.worker_heartbeat",
        defaults={"func": "cdp_site.tasks.heartbeat", "schedule_type": "I", "minutes": 1,
                   "repeats": -1},
    )


def unschedule_heartbeat(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name="strata.worker_heartbeat").delete()


class Migration(migrations.Migration):
    dependencies = [
        ("cdp_site", "0001_initial"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = [
        migrations.RunPython(seed_roles, migrations.RunPython.noop),
        migrations.RunSQL(AID_TRIGGER, DROP_AID_TRIGGER),
        migrations.RunPython(schedule_heartbeat, unschedule_heartbeat),
    ]
