"""Schedules for the scheduled jobs, editable afterwards in admin (django-celery-beat)."""

import json

from django.db import migrations

# (name, task, args, seconds)
SCHEDULES = [
    ("Erasure watchdog", "biometrics.tasks.erasure_watchdog_task", [], 60),
    ("Retention: leavers", "biometrics.tasks.retention_job_task", ["leavers"], 3600),
    ("Retention: template age", "biometrics.tasks.retention_job_task", ["template_age"], 86400),
    ("Retention: recognition events", "biometrics.tasks.retention_job_task",
     ["recognition_events"], 3600),
    ("Retention: consent expiry and reminders", "biometrics.tasks.retention_job_task",
     ["consents"], 3600),
    ("Retention: reconcile holders", "biometrics.tasks.retention_job_task", ["reconcile"], 21600),
]


def create(apps, schema_editor):
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    for name, task, args, seconds in SCHEDULES:
        interval, _ = IntervalSchedule.objects.get_or_create(every=seconds, period="seconds")
        PeriodicTask.objects.get_or_create(
            name=name,
            defaults={"task": task, "args": json.dumps(args), "interval": interval,
                      "enabled": True},
        )


def remove(apps, schema_editor):
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTask.objects.filter(name__in=[s[0] for s in SCHEDULES]).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("biometrics", "0001_initial"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create, remove)]
