"""Admin writes go through the services, as the API, the commands and the roster do.

A ModelAdmin that saves or deletes is a `ServiceAdmin` and names its services in
`service_create`, `service_update` and `service_delete`; Django's `save_model`, `delete_model`
and `delete_queryset` (the delete view and the "delete selected" action) call them, so every
admin write has its transaction, its audit row and its consent-status refresh. An admin whose
model is a record (decisions, the audit trail, biometric data) is a `ReadOnlyMixin` instead.
"""

from __future__ import annotations

from typing import Any, TypeVar

from django.contrib import admin
from django.db import models, transaction

from .actors import Actor

M = TypeVar("M", bound=models.Model)


def staff_actor(request) -> Actor:
    return Actor.staff(request.user)


def stored(obj: M) -> M:
    """The row as it is in the database: the admin's form has already written its new values
    onto `obj`, and a service must compare against (and audit) the values before."""
    return type(obj)._default_manager.get(pk=obj.pk)


def form_changes(form) -> dict[str, Any]:
    """The cleaned values of the fields the form changed."""
    return {name: form.cleaned_data[name] for name in form.changed_data}


class ReadOnlyMixin:
    """Append-only records: viewable, never added, edited or deleted from admin."""

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class ServiceAdmin(admin.ModelAdmin):
    """Saves and deletes call the admin's services (override those a model has; one it lacks
    must also be refused by a `has_*_permission`)."""

    def service_create(self, request, form) -> models.Model:
        raise NotImplementedError(f"{type(self).__name__} adds nothing")

    def service_update(self, request, obj: models.Model, form) -> models.Model:
        raise NotImplementedError(f"{type(self).__name__} changes nothing")

    def service_delete(self, request, obj: models.Model) -> None:
        raise NotImplementedError(f"{type(self).__name__} deletes nothing")

    def save_model(self, request, obj, form, change) -> None:
        saved = (
            self.service_update(request, stored(obj), form)
            if change
            else self.service_create(request, form)
        )
        # The admin goes on with `obj` (its inlines, its messages, its redirect): make it the
        # row the service saved.
        vars(obj).update(vars(saved))

    def delete_model(self, request, obj) -> None:
        self.service_delete(request, obj)

    def delete_queryset(self, request, queryset) -> None:
        with transaction.atomic():  # the "delete selected" action is not atomic by itself
            for obj in queryset:
                self.service_delete(request, obj)
