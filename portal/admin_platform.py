"""Admin of the platform's models from other apps: Django's accounts and Celery beat's schedules.

Superusers only (school staff have no business with either). Accounts stay writable, since
this is where staff accounts are made, and every write is audited (`admin.user_added`, …,
`admin.user_password_changed`; field names only, never a value). Guardians' accounts are not
listed at all: a guardian is managed as a guardian, and their account can never be made staff
(`consent.accounts`). The schedules are read-only:
they are installed by migrations with the code that runs them, and a retention job switched
off here would stop deletions the law requires without anyone noticing.
"""

from __future__ import annotations

from django.contrib import admin
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.models import Group, User
from django.db import transaction
from django_celery_beat import admin as beat_admin
from django_celery_beat.models import (
    ClockedSchedule,
    CrontabSchedule,
    IntervalSchedule,
    PeriodicTask,
    SolarSchedule,
)

from consent.accounts import GUARDIAN_USERNAME_PREFIX
from consent.admin_doors import ReadOnlyMixin, staff_actor
from consent.audit import audit_record


class SuperuserOnlyMixin:
    def has_module_permission(self, request) -> bool:
        return request.user.is_active and request.user.is_superuser

    def has_view_permission(self, request, obj=None) -> bool:
        return request.user.is_active and request.user.is_superuser

    def has_add_permission(self, request, *args) -> bool:
        return request.user.is_superuser and super().has_add_permission(request, *args)

    def has_change_permission(self, request, obj=None) -> bool:
        return request.user.is_superuser and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None) -> bool:
        return request.user.is_superuser and super().has_delete_permission(request, obj)


class AuditedMixin(SuperuserOnlyMixin):
    """Every add, change and delete writes `admin.<model>_<added|changed|deleted>` in the same
    transaction, naming the fields a form changed."""

    def audit(self, request, verb: str, pk, fields=()) -> None:
        audit_record(
            f"admin.{self.opts.model_name}_{verb}",
            actor=staff_actor(request),
            data={"id": pk, "fields": sorted(fields)},
        )

    def save_model(self, request, obj, form, change) -> None:
        with transaction.atomic():
            super().save_model(request, obj, form, change)
            self.audit(request, "changed" if change else "added", obj.pk, form.changed_data)

    def delete_model(self, request, obj) -> None:
        with transaction.atomic():
            self.audit(request, "deleted", obj.pk)
            super().delete_model(request, obj)

    def delete_queryset(self, request, queryset) -> None:
        with transaction.atomic():
            for pk in queryset.values_list("pk", flat=True):
                self.audit(request, "deleted", pk)
            super().delete_queryset(request, queryset)


class AuditedUserAdmin(AuditedMixin, UserAdmin):
    def get_queryset(self, request):
        return super().get_queryset(request).exclude(username__startswith=GUARDIAN_USERNAME_PREFIX)

    def user_change_password(self, request, id, form_url=""):
        with transaction.atomic():
            response = super().user_change_password(request, id, form_url)
            if request.method == "POST" and response.status_code == 302:  # changed
                self.audit(request, "password_changed", int(id))
        return response


class AuditedGroupAdmin(AuditedMixin, GroupAdmin):
    pass


admin.site.unregister(User)
admin.site.register(User, AuditedUserAdmin)
admin.site.unregister(Group)
admin.site.register(Group, AuditedGroupAdmin)


class ScheduleReadOnlyMixin(SuperuserOnlyMixin, ReadOnlyMixin):
    actions = ()  # enable, disable, toggle and run now would all change what runs


for model, model_admin in [
    (PeriodicTask, beat_admin.PeriodicTaskAdmin),
    (ClockedSchedule, beat_admin.ClockedScheduleAdmin),
    (CrontabSchedule, beat_admin.CrontabScheduleAdmin),
    (SolarSchedule, beat_admin.SolarScheduleAdmin),
    (IntervalSchedule, beat_admin.IntervalScheduleAdmin),
]:
    admin.site.unregister(model)
    admin.site.register(
        model, type(f"ReadOnly{model_admin.__name__}", (ScheduleReadOnlyMixin, model_admin), {})
    )
