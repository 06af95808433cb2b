"""Staff groups with sensible permissions; membership of a school is a StaffMembership."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

VIEW_ALL = [
    f"{app}.view_{model}"
    for app, models in {
        "consent": ["school", "purpose", "notice", "student", "guardian", "guardianship",
                    "notification", "notificationexception", "consentdecision", "auditevent"],
        "biometrics": ["holder", "photo", "facetemplate", "recognitionevent", "erasurerequest",
                       "erasurestep", "retentionrun"],
        "portal": ["export", "consentcampaign"],
    }.items()
    for model in models
]

GROUPS = {
    "School admin": VIEW_ALL + [
        "consent.change_school", "consent.add_purpose", "consent.change_purpose",
        "consent.add_notice", "consent.add_student", "consent.change_student",
        "consent.add_guardian", "consent.change_guardian", "consent.add_guardianship",
        "consent.change_guardianship", "consent.add_notification",
        "consent.add_notificationexception", "biometrics.add_holder",
        "biometrics.change_holder", "biometrics.add_photo", "portal.add_consentcampaign",
        "django_celery_beat.view_periodictask", "django_celery_beat.change_periodictask",
    ],
    "Enrolment operator": ["consent.view_student", "biometrics.view_photo", "biometrics.add_photo"],
    "DPO": VIEW_ALL + ["consent.change_school", "consent.add_notificationexception",
                       "django_celery_beat.view_periodictask"],
}


def create(apps, schema_editor):
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for name, perms in GROUPS.items():
        group, _ = Group.objects.get_or_create(name=name)
        for dotted in perms:
            app_label, codename = dotted.split(".")
            perm = Permission.objects.filter(
                content_type__app_label=app_label, codename=codename
            ).first()
            if perm:
                group.permissions.add(perm)


def remove(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name__in=list(GROUPS)).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("portal", "0003_campaign"),
        ("consent", "0001_initial"),
        ("biometrics", "0002_schedules"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create, remove)]
