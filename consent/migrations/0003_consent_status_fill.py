from django.db import migrations

# This migration used to fill the ConsentStatus table by running the live consent rule
# (consent.status), which breaks on old databases once the models move on: a migration may only
# use historical models. It is kept, as a no-op, so existing migration histories stay valid.
# After migrating a database that already has students, fill or repair the table with
#
#     python manage.py consent_status_check --repair
#
# (README.md, "Deployment"). A new database has no students, so there is nothing to fill.


class Migration(migrations.Migration):
    dependencies = [("consent", "0002_consent_status_roster_import")]

    operations = []
