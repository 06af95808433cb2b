"""Notifications written by the old `guardianship_link` say "email, sent" although nothing was
sent: they become `legacy` ("recorded at linking; no email was sent"), so admin no longer
claims an email that never existed.

They keep counting for the consent rule, as they did: turning them off would stop every
child's purposes at once and erase their data at the next retention run, for a record-keeping
fault the school may have covered on paper. Staff see them for what they are, and a consent
campaign sends these guardians the real notice (a legacy row does not count as reached).

Also installs the beat schedule of the notice watchdog.
"""

from django.db import migrations

from consent.schedules import schedules_operation

SCHEDULES = [
    ("Re-queue notices that stopped moving", "consent.tasks.notice_watchdog_task", [], 300),
]


def relabel(apps, schema_editor):
    Notification = apps.get_model("consent", "Notification")
    Notification.objects.filter(method="email", delivery__isnull=True).update(
        method="legacy", note="Recorded when the guardian was linked; no email was sent."
    )


def unlabel(apps, schema_editor):
    Notification = apps.get_model("consent", "Notification")
    Notification.objects.filter(method="legacy").update(method="email", note="")


class Migration(migrations.Migration):
    dependencies = [
        ("consent", "0007_notice_delivery_dpia_sign_off"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [
        migrations.RunPython(relabel, unlabel),
        schedules_operation(SCHEDULES),
    ]
