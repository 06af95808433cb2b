"""School scoping for Django admin: staff see only the schools they belong to
(docs/architecture.md, "Staff admin").

Every ModelAdmin of a school-owned model inherits SchoolScopedAdmin and names the lookup from
its model to School; every inline is a SchoolScopedInline. Querysets, the choices of every
foreign-key and many-to-many field (which are also what a form accepts), inline row ids, list
filters, the autocomplete endpoint (it asks the scoped admin of the model it searches) and
object lookups are all filtered, and an object of another school is a 404 — never a redirect
that reveals it exists. A relation to a model with no known way to a school offers nothing to
school staff.
"""

from __future__ import annotations

import contextvars
from typing import TYPE_CHECKING

from django.contrib import admin
from django.contrib.admin.utils import get_fields_from_path
from django.contrib.auth import get_user_model
from django.db import models
from django.forms import ModelChoiceField
from django.forms.models import BaseInlineFormSet
from django.http import Http404

from .models import (
    Guardian,
    Guardianship,
    Notification,
    Purpose,
    School,
    StaffMembership,
    Student,
)

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


# Mixins below extend ModelAdmin's methods; the type checker sees them as ModelAdmins.
if TYPE_CHECKING:
    AdminMixinBase = admin.ModelAdmin
else:
    AdminMixinBase = object


#: The way from each model a form field may offer to its school. Other apps add theirs
#: (`biometrics.admin` adds holders).
FK_SCOPES: dict[type[models.Model], str] = {
    School: "pk",
    Student: "school",
    Purpose: "school",
    Guardian: "guardianships__student__school",
    Guardianship: "student__school",
    Notification: "guardianship__student__school",
    get_user_model(): "school_memberships__school",  # staff of the same schools
}


def scoped_choices(model, user):
    """What a form field pointing at `model` may offer (and accept) to this user."""
    if staff_school_ids(user) is None:
        return model._default_manager.all()
    if model not in FK_SCOPES:
        return model._default_manager.none()
    return scope(model._default_manager.all(), user, FK_SCOPES[model])


class ScopedFormFieldsMixin(AdminMixinBase):
    """Foreign-key and many-to-many fields offer and accept only the user's schools' rows."""

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        kwargs["queryset"] = self._scoped(db_field, request, kwargs.get("queryset"))
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def formfield_for_manytomany(self, db_field, request, **kwargs):
        kwargs["queryset"] = self._scoped(db_field, request, kwargs.get("queryset"))
        return super().formfield_for_manytomany(db_field, request, **kwargs)

    @staticmethod
    def _scoped(db_field, request, narrowed):
        # An admin that narrows a field further (say, enabled purposes only) keeps its filter.
        allowed = scoped_choices(db_field.related_model, request.user)
        return allowed if narrowed is None else narrowed.filter(pk__in=allowed.values("pk"))


class ScopedValuesFilter(admin.AllValuesFieldListFilter):
    """The values a field across a relation takes in the rows this user may see (Django's
    filter would list them from every school's related rows)."""

    def __init__(self, field, request, params, model, model_admin, field_path):
        super().__init__(field, request, params, model, model_admin, field_path)
        rows = model_admin.get_queryset(request).order_by(field_path)
        self.lookup_choices = rows.values_list(field_path, flat=True).distinct()


def scoped_list_filter(model, item):
    """A list filter that offers only what the user's schools have: a relation by the related
    rows present in the list, a value across a relation by the values in the list."""
    if not isinstance(item, str):
        return item
    field = get_fields_from_path(model, item)[-1]
    if field.is_relation:
        return (item, admin.RelatedOnlyFieldListFilter)
    if "__" in item and not field.choices and not isinstance(field, models.BooleanField):
        return (item, ScopedValuesFilter)
    return item


class SchoolScopedAdmin(ScopedFormFieldsMixin, admin.ModelAdmin):
    school_path = "school"
    # A web address typed without a scheme is https (Django 6's default, chosen now).
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}

    def get_queryset(self, request):
        current_request.set(request)
        return scope(super().get_queryset(request), request.user, self.school_path)

    def get_list_filter(self, request):
        return [scoped_list_filter(self.model, f) for f in super().get_list_filter(request)]

    def has_module_permission(self, request) -> bool:
        return staff_school_ids(request.user) != set() and super().has_module_permission(request)

    def _get_obj_does_not_exist_redirect(self, request, opts, object_id):
        raise Http404("No such object in your schools.")


class ScopedInlineFormSet(BaseInlineFormSet):
    """A row is named by its id in a hidden field, which Django checks against every row of the
    model: here, only against the parent's own rows."""

    def add_fields(self, form, index) -> None:
        super().add_fields(form, index)
        pk = self.model._meta.pk if self.model is not None else None
        if pk is not None and isinstance(form.fields.get(pk.name), ModelChoiceField):
            form.fields[pk.name].queryset = self.get_queryset()


class SchoolScopedInline(ScopedFormFieldsMixin, admin.TabularInline):
    """An inline's rows belong to its parent (already scoped); its own relations and the ids
    of its rows are scoped here, like the admin's."""

    formset = ScopedInlineFormSet


class FixedSchoolMixin(AdminMixinBase):
    """A purpose, a child or a holder belongs to its school for good: moving one would leave
    its decisions, statuses and copies behind in the other school."""

    def get_readonly_fields(self, request, obj=None):
        fixed = ["school"] if obj is not None else []
        return [*super().get_readonly_fields(request, obj), *fixed]
