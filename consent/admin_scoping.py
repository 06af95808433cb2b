"""School scoping for Django admin: staff see only the schools they belong to
(docs/architecture.md, "Staff admin").

Every ModelAdmin of a school-owned model inherits SchoolScopedAdmin and names the lookup from
its model to School. Querysets, foreign-key choices and object lookups are all filtered, and an
object of another school is a 404 — never a redirect that reveals it exists.
"""

from __future__ import annotations

import contextvars
from typing import TYPE_CHECKING

from django.contrib import admin
from django.db import models
from django.http import Http404

from .models import Guardian, Purpose, School, StaffMembership, Student

current_request: contextvars.ContextVar = contextvars.ContextVar("admin_request", default=None)


def staff_school_ids(user) -> set[int] | None:
    """The schools a staff user may see; None means every school (superuser)."""
    if not user.is_active or not user.is_staff:
        return set()
    if user.is_superuser:
        return None
    cached = getattr(user, "_guardian_school_ids", None)
    if cached is None:
        cached = set(StaffMembership.objects.filter(user=user).values_list("school_id", flat=True))
        user._guardian_school_ids = cached
    return cached


def scope(queryset, user, path: str):
    ids = staff_school_ids(user)
    if ids is None:
        return queryset
    return (
        queryset.filter(**{f"{path}__in": ids}).distinct()
        if "__" in path
        else (queryset.filter(**{f"{path}__in": ids}))
    )


FK_SCOPES = {
    School: "pk",
    Student: "school",
    Purpose: "school",
    Guardian: "guardianships__student__school",
}


class SchoolScopedAdmin(admin.ModelAdmin):
    school_path = "school"
    # A web address typed without a scheme is https (Django 6's default, chosen now).
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}

    def get_queryset(self, request):
        current_request.set(request)
        return scope(super().get_queryset(request), request.user, self.school_path)

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        model = db_field.related_model
        if model in FK_SCOPES:
            kwargs["queryset"] = scope(model.objects.all(), request.user, FK_SCOPES[model])
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def has_module_permission(self, request) -> bool:
        return staff_school_ids(request.user) != set() and super().has_module_permission(request)

    def _get_obj_does_not_exist_redirect(self, request, opts, object_id):
        raise Http404("No such object in your schools.")


# Mixins below extend ModelAdmin's methods; the type checker sees them as ModelAdmins.
if TYPE_CHECKING:
    AdminMixinBase = admin.ModelAdmin
else:
    AdminMixinBase = object


class FixedSchoolMixin(AdminMixinBase):
    """A purpose, a child or a holder belongs to its school for good: moving one would leave
    its decisions, statuses and copies behind in the other school."""

    def get_readonly_fields(self, request, obj=None):
        fixed = ["school"] if obj is not None else []
        return [*super().get_readonly_fields(request, obj), *fixed]
