from django.db import migrations

from consent.schedules import schedules_operation

SCHEDULES = [
    ("Re-queue stuck roster imports", "consent.tasks.roster_import_watchdog_task", [], 120),
]


class Migration(migrations.Migration):
    dependencies = [
        ("portal", "0003_campaign"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [schedules_operation(SCHEDULES)]
