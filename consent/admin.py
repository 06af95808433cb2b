"""Admin for schools, students, guardians, purposes and consent — scoped to the staff's schools.

Decisions and audit events are read-only. Staff may record a child's own refusal, never a
parent's grant.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.db import transaction
from django.urls import path

from .actors import Actor
from .admin_scoping import SchoolScopedAdmin, current_request, staff_school_ids
from .audit import audit_verify
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
    StudentStatus,
)
from .services import child_refusal_record
from .status import (
    consent_status_refresh,
    consent_status_refresh_school,
    consent_status_table,
    students_by_consent,
)


class ReadOnlyMixin:
    """Append-only records: viewable, never added, edited or deleted from admin."""

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(School)
class SchoolAdmin(SchoolScopedAdmin):
    school_path = "pk"
    list_display = [
        "name",
        "slug",
        "dpo_email",
        "leaver_window_days",
        "event_window_days",
        "template_max_age_days",
        "consent_validity_days",
        "export_expiry_hours",
    ]
    prepopulated_fields = {"slug": ["name"]}
    fieldsets = [
        (None, {"fields": ["name", "slug", "address", "website", "jurisdiction"]}),
        ("Data protection officer", {"fields": ["dpo_name", "dpo_email"]}),
        (
            "Retention policy (published on the school's transparency page)",
            {
                "fields": [
                    "leaver_window_days",
                    "event_window_days",
                    "template_max_age_days",
                    "consent_validity_days",
                    "export_expiry_hours",
                ],
                "description": "Legal limits are enforced: leavers within 30 days (Illinois), "
                "templates at most 3 years after the last interaction (BIPA).",
            },
        ),
    ]

    def has_add_permission(self, request) -> bool:
        return request.user.is_superuser

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        if change and "consent_validity_days" in form.changed_data:
            consent_status_refresh_school(obj)  # in the admin's transaction


class NoticeInline(admin.TabularInline):
    model = Notice
    extra = 0
    readonly_fields = ["version", "sha256", "published_at"]
    fields = ["version", "text", "sha256", "published_at"]

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Purpose)
class PurposeAdmin(SchoolScopedAdmin):
    list_display = ["code", "name", "school", "enabled", "dpia_reference"]
    list_filter = ["enabled"]
    inlines = [NoticeInline]

    def save_formset(self, request, form, formset, change):
        # New notice versions get the next number; earlier grants become stale (SPEC §2.6).
        for notice in formset.save(commit=False):
            if not notice.pk:
                last = notice.purpose.notices.order_by("-version").first()
                notice.version = (last.version + 1) if last else 1
                notice.save()

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        # Enabled, notice, alternative or DPIA: all rule inputs for every child of the school.
        # The admin's change view holds one transaction, so the statuses commit with the change.
        consent_status_refresh_school(form.instance.school_id)


class GuardianshipInline(admin.TabularInline):
    model = Guardianship
    extra = 0
    autocomplete_fields = ["guardian"]


class ConsentFilter(admin.SimpleListFilter):
    title = "consent"
    parameter_name = "consent"

    def lookups(self, request, model_admin):
        return [
            ("active", "Some purpose active"),
            ("undecided", "No decision yet"),
            ("objected", "A parent objected or withdrew"),
            ("child_refused", "Child refused"),
            ("leaver", "Leaver"),
        ]

    def queryset(self, request, queryset):
        value = self.value()
        if not value:
            return queryset
        if value == "leaver":
            return queryset.filter(status=StudentStatus.LEAVER)
        if value not in {v for v, _ in self.lookups(request, None)}:
            return queryset
        # The rule's answers as stored by consent.status: a fixed number of queries.
        return students_by_consent(queryset, value)


@admin.register(Student)
class StudentAdmin(SchoolScopedAdmin):
    list_display = ["name", "external_id", "class_name", "status", "consent_summary"]
    list_filter = [ConsentFilter, "status", "class_name"]
    search_fields = ["name", "external_id"]
    readonly_fields = ["id", "subject_id", "created_at", "status", "left_on"]
    inlines = [GuardianshipInline]
    actions = ["record_child_refusal"]
    list_per_page = 100

    def get_changelist_instance(self, request):
        changelist = super().get_changelist_instance(request)
        # The consent column for the whole page in a fixed number of queries.
        request._consent_statuses = consent_status_table([s.pk for s in changelist.result_list])
        return changelist

    @admin.display(description="Consent per purpose")
    def consent_summary(self, obj) -> str:
        request = current_request.get()
        statuses = getattr(request, "_consent_statuses", {}).get(obj.pk)
        if statuses is None:
            statuses = consent_status_table([obj.pk])[obj.pk]
        return ", ".join(f"{code}: {status}" for code, status in statuses) or "—"

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        # Guardians added, removed or their parental responsibility changed inline.
        consent_status_refresh([form.instance.pk])

    @admin.action(description="Record the child's own refusal (all purposes)")
    def record_child_refusal(self, request, queryset):
        for student in queryset:
            child_refusal_record(
                student=student,
                actor=Actor.staff(request.user),
                recorded_by=request.user,
                note="Recorded in admin",
            )
        messages.success(request, f"Recorded the refusal of {queryset.count()} child(ren).")

    def get_urls(self):
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

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = {**(extra_context or {}), "enrol_url": f"../../{object_id}/enrol/"}
        return super().change_view(request, object_id, form_url, extra_context)


@admin.register(Guardian)
class GuardianAdmin(SchoolScopedAdmin):
    school_path = "guardianships__student__school"
    list_display = ["name", "email", "language"]
    search_fields = ["name", "email"]
    exclude = ["user"]

    def delete_model(self, request, obj):
        self.delete_queryset(request, Guardian.objects.filter(pk=obj.pk))

    def delete_queryset(self, request, queryset):
        # Their guardianships go with them: a rule input of each of their children.
        with transaction.atomic():
            students = list(
                Guardianship.objects.filter(guardian__in=queryset).values_list(
                    "student_id", flat=True
                )
            )
            super().delete_queryset(request, queryset)
            consent_status_refresh(students)


class NotificationStatusMixin:
    """Notifications and their exceptions are rule inputs (SPEC §2.2): every add, change or
    delete re-runs the rule for the child, in the admin's transaction."""

    def save_model(self, request, obj, form, change):
        # The child it belonged to before a change, too (read before the row is saved).
        before = (
            list(
                type(obj)
                .objects.filter(pk=obj.pk)
                .values_list("guardianship__student_id", flat=True)
            )
            if change
            else []
        )
        super().save_model(request, obj, form, change)
        consent_status_refresh({*before, obj.guardianship.student_id})

    def delete_model(self, request, obj):
        self.delete_queryset(request, type(obj).objects.filter(pk=obj.pk))

    def delete_queryset(self, request, queryset):
        with transaction.atomic():
            students = list(queryset.values_list("guardianship__student_id", flat=True))
            super().delete_queryset(request, queryset)
            consent_status_refresh(students)


@admin.register(StaffMembership)
class StaffMembershipAdmin(SchoolScopedAdmin):
    list_display = ["user", "school", "role"]

    def has_module_permission(self, request) -> bool:
        return request.user.is_superuser


@admin.register(Notification)
class NotificationAdmin(NotificationStatusMixin, SchoolScopedAdmin):
    school_path = "guardianship__student__school"
    list_display = ["guardianship", "method", "sent_at"]


@admin.register(NotificationException)
class NotificationExceptionAdmin(NotificationStatusMixin, SchoolScopedAdmin):
    school_path = "guardianship__student__school"
    list_display = ["guardianship", "reason", "recorded_at"]

    def save_model(self, request, obj, form, change):
        obj.recorded_by = request.user
        super().save_model(request, obj, form, change)


@admin.register(ConsentDecision)
class ConsentDecisionAdmin(ReadOnlyMixin, SchoolScopedAdmin):
    school_path = "student__school"
    list_display = ["at", "student", "purpose", "decision", "guardian", "method", "notice_version"]
    list_filter = ["decision", "method", "purpose__code"]
    list_select_related = ["student", "purpose", "guardian"]
    exclude = ["receipt"]


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyMixin, SchoolScopedAdmin):
    school_path = "school_id"
    list_display = ["id", "at", "action", "actor_kind", "actor_label", "subject"]
    list_filter = ["action", "actor_kind"]
    search_fields = ["subject", "action"]
    actions = ["verify_chain"]

    def get_queryset(self, request):
        qs = admin.ModelAdmin.get_queryset(self, request)
        ids = staff_school_ids(request.user)
        return qs if ids is None else qs.filter(school_id__in=ids)

    @admin.action(description="Verify the whole audit chain")
    def verify_chain(self, request, queryset):
        report = audit_verify()
        if report.ok:
            messages.success(request, f"Chain intact: {report.checked} events verified.")
        else:
            messages.error(
                request,
                f"Chain BROKEN at event {report.first_broken_id}: {report.problem} "
                f"({report.checked} events verified before it).",
            )

    def has_change_permission(self, request, obj=None) -> bool:
        return False
