"""A signed checkpoint of the audit trail every day (editable afterwards in admin)."""

from django.db import migrations

from consent.schedules import schedules_operation

SCHEDULES = [
    ("Audit trail checkpoint", "consent.tasks.audit_checkpoint_task", [], 86400),
]


class Migration(migrations.Migration):
    dependencies = [
        ("consent", "0009_school_reconsent_window"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [schedules_operation(SCHEDULES)]
