"""Every retention job's schedule runs `portal.tasks.retention_job_task` (job name as its
argument), so each scheduled run is recorded like a command run; the export-expiry schedule
becomes the `exports` job."""

import json

from django.db import migrations

TASK = "portal.tasks.retention_job_task"
# old task -> (new task, args to set, or None to keep the row's own)
REPOINT = {
    "biometrics.tasks.retention_job_task": (TASK, None),
    "portal.exports.tasks.export_expire_task": (TASK, ["exports"]),
}


def repoint(apps, schema_editor, mapping=REPOINT):
    task_model = apps.get_model("django_celery_beat", "PeriodicTask")
    for old, (new, args) in mapping.items():
        for row in task_model.objects.filter(task=old):
            row.task = new
            if args is not None:
                row.args = json.dumps(args)
            row.save(update_fields=["task", "args"])


def back(apps, schema_editor):
    task_model = apps.get_model("django_celery_beat", "PeriodicTask")
    for row in task_model.objects.filter(task=TASK):
        exports = json.loads(row.args or "[]") == ["exports"]
        row.task = (
            "portal.exports.tasks.export_expire_task"
            if exports
            else "biometrics.tasks.retention_job_task"
        )
        if exports:
            row.args = "[]"
        row.save(update_fields=["task", "args"])


class Migration(migrations.Migration):
    dependencies = [
        ("portal", "0005_export_in_progress_per_guardian"),
        ("biometrics", "0002_schedules"),
    ]

    operations = [migrations.RunPython(repoint, back)]
