from django.contrib import admin

from .models import (
    AuditEvent,
    ConsentDecision,
    Guardian,
    Guardianship,
    Notice,
    Notification,
    NotificationException,
    Purpose,
    School,
    StaffMembership,
    Student,
)


class ReadOnlyAdmin(admin.ModelAdmin):
    """Append-only records: viewable, never edited or deleted from admin."""

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(School)
class SchoolAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "dpo_email", "leaver_window_days", "event_window_days"]
    prepopulated_fields = {"slug": ["name"]}


class NoticeInline(admin.TabularInline):
    model = Notice
    extra = 0
    readonly_fields = ["version", "sha256", "published_at"]
    fields = ["version", "text", "sha256", "published_at"]

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Purpose)
class PurposeAdmin(admin.ModelAdmin):
    list_display = ["code", "name", "school", "enabled", "dpia_reference"]
    list_filter = ["school", "enabled"]
    inlines = [NoticeInline]


class GuardianshipInline(admin.TabularInline):
    model = Guardianship
    extra = 0
    autocomplete_fields = ["guardian"]


@admin.register(Student)
class StudentAdmin(admin.ModelAdmin):
    list_display = ["name", "external_id", "school", "class_name", "status"]
    list_filter = ["school", "status", "class_name"]
    search_fields = ["name", "external_id"]
    readonly_fields = ["id", "subject_id", "created_at"]
    inlines = [GuardianshipInline]

    def get_urls(self):
        from django.urls import path

        from biometrics.admin_enrol import enrol_view

        return [
            path(
                "<uuid:object_id>/enrol/",
                self.admin_site.admin_view(
                    lambda request, object_id: enrol_view(self, request, object_id)
                ),
                name="consent_student_enrol",
            ),
            *super().get_urls(),
        ]


@admin.register(Guardian)
class GuardianAdmin(admin.ModelAdmin):
    list_display = ["name", "email", "language"]
    search_fields = ["name", "email"]
    exclude = ["user"]


admin.site.register(StaffMembership)
admin.site.register(Notification)
admin.site.register(NotificationException)


@admin.register(ConsentDecision)
class ConsentDecisionAdmin(ReadOnlyAdmin):
    list_display = ["at", "student", "purpose", "decision", "guardian", "method", "notice_version"]
    list_filter = ["decision", "method", "purpose__code"]
    exclude = ["receipt"]


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = ["id", "at", "action", "actor_kind", "actor_label", "subject"]
    list_filter = ["action", "actor_kind"]
    search_fields = ["subject", "action"]
