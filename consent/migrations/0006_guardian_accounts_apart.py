"""Guardian and staff accounts apart (consent.accounts): every guardian gets an account of
their own, named `guardian:<hex>`, with no usable password.

A guardian whose account is a staff or superuser account, a school's staff member, or one that
can sign in with a password (an account an earlier version reused because its username equalled
the guardian's address) is given a new account; the old one is left to its owner (whose password
that earlier version may have made unusable: `create_staff` issues a new set-password link).
Every other guardian's account is only renamed, so their sessions go on.
"""

import uuid

from django.contrib.auth.hashers import is_password_usable, make_password
from django.db import migrations

PREFIX = "guardian:"


def accounts_apart(apps, schema_editor):
    User = apps.get_model("auth", "User")
    Guardian = apps.get_model("consent", "Guardian")
    StaffMembership = apps.get_model("consent", "StaffMembership")
    staff_ids = set(StaffMembership.objects.values_list("user_id", flat=True))
    for guardian in Guardian.objects.select_related("user").order_by("pk").iterator():
        user = guardian.user
        shared = (
            user.is_staff
            or user.is_superuser
            or user.pk in staff_ids
            or is_password_usable(user.password)
        )
        if shared:
            guardian.user = User.objects.create(
                username=PREFIX + uuid.uuid4().hex, password=make_password(None)
            )
            guardian.save(update_fields=["user"])
        elif not user.username.startswith(PREFIX):
            user.username = PREFIX + uuid.uuid4().hex
            user.email = ""
            user.save(update_fields=["username", "email"])


class Migration(migrations.Migration):
    dependencies = [
        ("consent", "0005_retired_subject"),
        ("auth", "0012_alter_user_first_name_max_length"),
    ]

    operations = [migrations.RunPython(accounts_apart, migrations.RunPython.noop)]
