"""Every 15 minutes: calculated attribute values whose window slid since they were computed
are recomputed from their state (profiles.calculated.attributes.correct_expired)."""

from django.db import migrations

NAME = "profiles.correct_calculated_attributes"


def schedule(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.update_or_create(
        name=NAME, defaults={"func": "profiles.tasks.correct_calculated_attributes",
                             "schedule_type": "I", "minutes": 15, "repeats": -1})


def unschedule(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name=NAME).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("profiles", "0008_calculated_attribute_backfill"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = [migrations.RunPython(schedule, unschedule)]
