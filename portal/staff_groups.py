"""Staff groups with sensible permissions; a staff member's schools are StaffMemberships.

Kept exactly in step after every `migrate` (and every test-database flush) by a post_migrate
handler: a permission a group no longer lists is taken away (an earlier version gave "School
admin" the Celery beat schedules). Global models — accounts, schedules, retention runs (every
school's counts together) — are in no group: superusers only.
"""

from __future__ import annotations

VIEW_ALL = [
    f"{app}.view_{model}"
    for app, models in {
        "consent": [
            "school",
            "purpose",
            "notice",
            "student",
            "guardian",
            "guardianship",
            "notification",
            "notificationexception",
            "noticedelivery",
            "dpiasignoff",
            "consentdecision",
            "auditevent",
        ],
        "biometrics": [
            "holder",
            "photo",
            "facetemplate",
            "recognitionevent",
            "erasurerequest",
            "erasurestep",
        ],
        "portal": ["export", "consentcampaign"],
    }.items()
    for model in models
]

GROUPS = {
    "School admin": VIEW_ALL
    + [
        "consent.change_school",
        "consent.add_purpose",
        "consent.change_purpose",
        "consent.add_notice",
        "consent.add_student",
        "consent.change_student",
        "consent.add_guardian",
        "consent.change_guardian",
        "consent.add_guardianship",
        "consent.change_guardianship",
        "consent.add_notification",
        "consent.add_notificationexception",
        "biometrics.add_holder",
        "biometrics.change_holder",
        "biometrics.add_photo",
        "portal.add_consentcampaign",
    ],
    "Enrolment operator": ["consent.view_student", "biometrics.view_photo", "biometrics.add_photo"],
    "DPO": VIEW_ALL
    + [
        "consent.change_school",
        "consent.add_notificationexception",
    ],
}


def staff_groups_sync(**kwargs) -> None:
    # Imported when called (after migrate): this module is imported while apps load.
    from django.contrib.auth.models import Group, Permission  # noqa: PLC0415

    for name, perms in GROUPS.items():
        group, _ = Group.objects.get_or_create(name=name)
        wanted = []
        for dotted in perms:
            app_label, codename = dotted.split(".")
            perm = Permission.objects.filter(
                content_type__app_label=app_label, codename=codename
            ).first()
            if perm:
                wanted.append(perm)
        group.permissions.set(wanted)
