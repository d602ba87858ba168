"""Daily upkeep of the raw store, and a fallback run of the stream aggregator, as django-q2
schedules (profiles.tasks)."""

from django.db import migrations

SCHEDULES = [
    # name, func, schedule type, minutes
    ("profiles.ensure_partitions", "profiles.tasks.ensure_partitions", "D", None),
    ("profiles.drop_expired_raw_events", "profiles.tasks.drop_expired_raw_events", "D", None),
    ("profiles.forget_old_message_ids", "profiles.tasks.forget_old_message_ids", "D", None),
    ("profiles.aggregate_streams", "profiles.tasks.aggregate_streams", "I", 1),
]


def schedule(apps, schema_editor):
    Schedule = apps.get_model("django_q", "Schedule")
    for name, func, schedule_type, minutes in SCHEDULES:
        Schedule.objects.update_or_create(
            name=name,
            defaults={"func": func, "schedule_type": schedule_type, "minutes": minutes,
                      "repeats": -1},
        )


def unschedule(apps, schema_editor):
    names = [name for name, *_ in SCHEDULES]
    apps.get_model("django_q", "Schedule").objects.filter(name__in=names).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("profiles", "0002_raw_store"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = [migrations.RunPython(schedule, unschedule)]
