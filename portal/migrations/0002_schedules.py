from django.db import migrations

from consent.schedules import schedules_operation

SCHEDULES = [
    ("Delete expired export files", "portal.exports.tasks.export_expire_task", [], 3600),
]


class Migration(migrations.Migration):
    dependencies = [
        ("portal", "0001_initial"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [schedules_operation(SCHEDULES)]
