"""Schedules for the scheduled jobs, editable afterwards in admin (django-celery-beat)."""

from django.db import migrations

from consent.schedules import schedules_operation

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


class Migration(migrations.Migration):
    dependencies = [
        ("biometrics", "0001_initial"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [schedules_operation(SCHEDULES)]
