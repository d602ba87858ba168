"""Scheduled experience work (django-q2): bandits reweighted every 15 minutes (each bandit only
when its own interval and burn-in have passed), and a results snapshot of every running
experience hourly (the charts over time read them)."""

from django.db import migrations

SCHEDULES = [
    # name, function, schedule type, minutes
    ("experiences.reweight_bandits", "experiences.tasks.reweight_bandits", "I", 15),
    ("experiences.snapshot_results", "experiences.tasks.snapshot_results", "H", None),
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
        ("experiences", "0001_experiences"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = [migrations.RunPython(schedule, unschedule)]
