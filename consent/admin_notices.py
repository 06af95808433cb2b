"""Admin for the school's written notices on their way to guardians, and the record that they
reached them.

A delivery is written by the link that queued it and the worker that sent it (read-only):
staff watch here which guardians the notice has not reached (retrying, or given up on) and
reach them with a consent campaign (sends the notice again) or a paper letter, which they
record as a Notification. Notification exceptions record a guardian the school need not or
must not notify (cannot be found, lacks capacity, the welfare of the child, not practicable).
"""

from __future__ import annotations

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db.models import Q

from .admin_doors import ReadOnlyMixin, ServiceAdmin, form_changes, staff_actor
from .admin_scoping import SchoolScopedAdmin
from .models import NoticeDelivery, Notification, NotificationException, NotificationMethod
from .services import (
    notification_delete,
    notification_exception_delete,
    notification_exception_record,
    notification_exception_update,
    notification_record,
    notification_update,
)

Status = NoticeDelivery.Status
NOT_REACHED = Q(status=Status.FAILED) | Q(status=Status.PENDING, attempts__gt=0)


class ReachedFilter(admin.SimpleListFilter):
    title = "reached"
    parameter_name = "reached"

    def lookups(self, request, model_admin):
        return [("no", "Not reached"), ("yes", "Reached")]

    def queryset(self, request, queryset):
        if self.value() == "no":
            return queryset.filter(NOT_REACHED)
        if self.value() == "yes":
            return queryset.filter(status=Status.SENT)
        return queryset


@admin.register(NoticeDelivery)
class NoticeDeliveryAdmin(ReadOnlyMixin, SchoolScopedAdmin):
    school_path = "guardianship__student__school"
    list_display = ["guardianship", "reached", "attempts", "created_at", "sent_at"]
    list_filter = [ReachedFilter, "status"]
    list_select_related = ["guardianship__guardian", "guardianship__student"]
    fields = readonly_fields = (
        "guardianship",
        "status",
        "attempts",
        "last_error",
        "created_at",
        "next_attempt_at",
        "sent_at",
        "language",
        "notification",
    )

    def has_delete_permission(self, request, obj=None) -> bool:
        # A delivery goes with its link (a guardian or a link deleted elsewhere, whose delete
        # page asks about every row that goes with it); it is never deleted on its own.
        return obj is not None

    def delete_view(self, request, object_id, extra_context=None):
        raise PermissionDenied

    @admin.display(description="Reached?")
    def reached(self, obj: NoticeDelivery) -> str:
        if obj.status == Status.SENT:
            return f"Reached: accepted by the mail server {obj.sent_at:%Y-%m-%d %H:%M}"
        if obj.status == Status.FAILED:
            return f"Not reached (gave up after {obj.attempts} attempts): {obj.last_error}"
        if obj.attempts and obj.status == Status.PENDING:
            return f"Not reached yet, retrying (attempt {obj.attempts} failed: {obj.last_error})"
        return "On its way"


@admin.register(Notification)
class NotificationAdmin(ServiceAdmin, SchoolScopedAdmin):
    """The record that the school's notice reached a guardian (a rule input: its services
    store the child's statuses again). Staff add paper letters only: the date it was handed
    over or posted, recorded by them. An email notification is written by the notice delivery
    once the mail server accepted the email, and stays as it is (its delivery is the proof)."""

    school_path = "guardianship__student__school"
    list_display = ["guardianship", "method", "sent_at", "recorded_by"]
    list_filter = ["method"]
    fields = ["guardianship", "sent_at", "note", "method", "recorded_by"]
    readonly_fields = ["method", "recorded_by"]

    def has_change_permission(self, request, obj=None) -> bool:
        letter = obj is None or obj.method == NotificationMethod.LETTER
        return letter and super().has_change_permission(request, obj)

    def service_create(self, request, form) -> Notification:
        data = form.cleaned_data
        return notification_record(
            guardianship=data["guardianship"],
            sent_at=data["sent_at"],
            note=data["note"],
            method=NotificationMethod.LETTER,
            recorded_by=request.user,
            actor=staff_actor(request),
        )

    def service_update(self, request, obj, form) -> Notification:
        return notification_update(
            notification=obj,
            recorded_by=request.user,
            actor=staff_actor(request),
            **form_changes(form),
        )

    def service_delete(self, request, obj) -> None:
        notification_delete(notification=obj, actor=staff_actor(request))


@admin.register(NotificationException)
class NotificationExceptionAdmin(ServiceAdmin, SchoolScopedAdmin):
    school_path = "guardianship__student__school"
    list_display = ["guardianship", "reason", "recorded_at"]
    exclude = ["recorded_by"]  # the staff member who records it

    def service_create(self, request, form) -> NotificationException:
        data = {**form.cleaned_data, "recorded_by": request.user}
        return notification_exception_record(actor=staff_actor(request), **data)

    def service_update(self, request, obj, form) -> NotificationException:
        data = {**form_changes(form), "recorded_by": request.user}
        return notification_exception_update(exception=obj, actor=staff_actor(request), **data)

    def service_delete(self, request, obj) -> None:
        notification_exception_delete(exception=obj, actor=staff_actor(request))
