"""Admin for the school's written notices on their way to guardians (read-only).

A delivery is written by the link that queued it and the worker that sent it: staff watch
here which guardians the notice has not reached (retrying, or given up on) and reach them
with a consent campaign (sends the notice again) or a paper letter (Notifications).
"""

from __future__ import annotations

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db.models import Q

from .admin_doors import ReadOnlyMixin
from .admin_scoping import SchoolScopedAdmin
from .models import NoticeDelivery

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
