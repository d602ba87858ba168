"""Scheduled audience work: time-relative audiences recomputed every 15 minutes (people leave
"visited in the last 7 days" when the week passes), and a size point per audience hourly."""

from django.db import migrations

SCHEDULES = [
    # name, function, schedule type, minutes
    ("audiences.recompute_time_relative", "audiences.tasks.recompute_time_relative", "I", 15),
    ("audiences.record_sizes", "audiences.tasks.record_sizes", "H", None),
]


def schedule(apps, schema_editor):
    Schedule = apps.get_model("django_q", "Schedule")
    for name, func, kind, minutes in SCHEDULES:
        defaults = {"func": func, "schedule_type": kind, "repeats": -1}
        if minutes:
            defaults["minutes"] = minutes
        Schedule.objects.update_or_create(name=name, defaults=defaults)


def unschedule(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(
        name__in=[name for name, *_ in SCHEDULES]).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("audiences", "0001_audiences"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = [migrations.RunPython(schedule, unschedule)]
