"""Installing beat schedules from a migration (django-celery-beat; editable in admin after).

Migrations call `schedules_operation` with their own list, so each app ships the schedules of
its own jobs, installed once and removed on reversal. It uses the historical models the
migration hands it, never the live ones, so old migrations keep working as models change.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from django.db import migrations

#: (name shown in admin, registered task name, task args, every N seconds)
Schedule = tuple[str, str, list, int]


def schedules_operation(schedules: Sequence[Schedule]) -> migrations.RunPython:
    def create(apps, schema_editor) -> None:
        interval_model = apps.get_model("django_celery_beat", "IntervalSchedule")
        task_model = apps.get_model("django_celery_beat", "PeriodicTask")
        for name, task, args, seconds in schedules:
            interval, _ = interval_model.objects.get_or_create(every=seconds, period="seconds")
            task_model.objects.get_or_create(
                name=name,
                defaults={
                    "task": task,
                    "args": json.dumps(args),
                    "interval": interval,
                    "enabled": True,
                },
            )

    def remove(apps, schema_editor) -> None:
        task_model = apps.get_model("django_celery_beat", "PeriodicTask")
        task_model.objects.filter(name__in=[s[0] for s in schedules]).delete()

    return migrations.RunPython(create, remove)
