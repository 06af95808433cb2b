"""The erasure watchdog runs every 30 seconds (it reclaims the steps of dead workers, whose
leases last 30 seconds, so an erasure stalls at most about a minute)."""

from django.db import migrations

NAME = "Erasure watchdog"


def every(seconds):
    def change(apps, schema_editor):
        interval_model = apps.get_model("django_celery_beat", "IntervalSchedule")
        task_model = apps.get_model("django_celery_beat", "PeriodicTask")
        interval, _ = interval_model.objects.get_or_create(every=seconds, period="seconds")
        task_model.objects.filter(name=NAME).update(interval=interval)

    return change


class Migration(migrations.Migration):
    dependencies = [
        ("biometrics", "0004_erasure_step_retries_lease_proof"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(every(30), every(60))]
