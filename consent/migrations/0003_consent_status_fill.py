from django.db import migrations


def fill(apps, schema_editor):
    """Run the consent rule for every existing child and store its answers.

    The rule reads the live models (consent.rules), so this uses them rather than historical
    ones: the table is the rule's output, and only the rule may produce it. A database with no
    students (a new install, the test database) does nothing here.
    """
    Student = apps.get_model("consent", "Student")
    if not Student.objects.using(schema_editor.connection.alias).exists():
        return
    from consent.status import consent_status_refresh

    ids = Student.objects.using(schema_editor.connection.alias).values_list("pk", flat=True)
    consent_status_refresh(ids.order_by("pk").iterator(chunk_size=2000))


class Migration(migrations.Migration):
    dependencies = [("consent", "0002_consent_status_roster_import")]

    operations = [migrations.RunPython(fill, migrations.RunPython.noop)]
