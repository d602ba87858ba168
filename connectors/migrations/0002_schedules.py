"""Scheduled connector work: every minute, each due job (and each a dead worker left) gets a
task."""

from django.db import migrations

NAME = "connectors.enqueue_due_jobs"


def schedule(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.update_or_create(
        name=NAME, defaults={"func": "connectors.tasks.enqueue_due_jobs", "schedule_type": "I",
                             "minutes": 1, "repeats": -1})


def unschedule(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name=NAME).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("connectors", "0001_authorizations_jobs"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = [migrations.RunPython(schedule, unschedule)]
