"""Admin for schools, students, guardians, purposes and consent — scoped to the staff's schools.

Every save and delete calls a service of `consent.services` (see `admin_doors`), so admin
changes are audited and keep the stored consent statuses right. Decisions and audit events are
read-only. Staff may record a child's own refusal, never a parent's grant.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.contrib.auth import get_user_model

from . import (
    admin_guardians,  # noqa: F401 - registers the guardians' admin
    admin_notices,  # noqa: F401 - registers the notice deliveries' admin
)
from .accounts import GUARDIAN_USERNAME_PREFIX
from .admin_doors import ReadOnlyMixin, ServiceAdmin, form_changes, staff_actor, stored
from .admin_governance import DpiaFilter, DpiaSignOffInline, DpiaSignOffMixin
from .admin_scoping import (
    FixedSchoolMixin,
    SchoolScopedAdmin,
    SchoolScopedInline,
    current_request,
    staff_school_ids,
)
from .admin_texts import NoticeInline, PurposeTextInline, SchoolForm, TextsAdminMixin
from .audit import audit_verify
from .models import (
    AuditEvent,
    ConsentDecision,
    Guardianship,
    Purpose,
    School,
    StaffMembership,
    Student,
    StudentStatus,
)
from .services import (
    child_refusal_record,
    guardianship_link,
    guardianship_unlink,
    guardianship_update,
    purpose_create,
    purpose_delete,
    purpose_update,
    school_create,
    school_delete,
    school_policy_update,
    staff_membership_create,
    staff_membership_delete,
    staff_membership_update,
    student_create,
    student_update,
)
from .status import consent_status_table, students_by_consent


@admin.register(School)
class SchoolAdmin(ServiceAdmin, SchoolScopedAdmin):
    school_path = "pk"
    form = SchoolForm
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
        (
            "Languages",
            {
                "fields": ["language", "languages"],
                "description": "Parents read the school's texts (purposes, notices) in the "
                "language they use, if the school offers it, else in its default language. "
                "A new notice version needs its text in every language offered.",
            },
        ),
        ("Data protection officer", {"fields": ["dpo_name", "dpo_email"]}),
        (
            "Retention policy (published on the school's transparency page)",
            {
                "fields": [
                    "leaver_window_days",
                    "reconsent_window_days",
                    "event_window_days",
                    "template_max_age_days",
                    "consent_validity_days",
                    "export_expiry_hours",
                ],
                "description": "Legal limits are enforced: leavers within 30 days (Illinois), "
                "data waiting for consent on a new notice at most 30 days, "
                "templates at most 3 years after the last interaction (BIPA).",
            },
        ),
        (
            "The child's own voice (published on the school's transparency page)",
            {
                "fields": ["competence_age"],
                "description": "From this age (12 to 16) a child may sign in to their own "
                "page, see what is held and refuse themselves. Scotland presumes 12; under "
                "China's PIPL set 14. From 18 only the student's own consent counts.",
            },
        ),
        (
            "Face matching (published on the school's transparency page)",
            {
                "fields": ["face_tolerance", "face_match_margin"],
                "description": "The model was trained on adults; its authors warn that it "
                "mixes up children more easily at 0.6 and suggest a stricter tolerance.",
            },
        ),
    ]

    def has_add_permission(self, request) -> bool:
        return request.user.is_superuser

    def service_create(self, request, form) -> School:
        return school_create(actor=staff_actor(request), **form.cleaned_data)

    def service_update(self, request, obj, form) -> School:
        return school_policy_update(school=obj, actor=staff_actor(request), **form_changes(form))

    def service_delete(self, request, obj) -> None:
        school_delete(school=obj, actor=staff_actor(request))


@admin.register(Purpose)
class PurposeAdmin(
    TextsAdminMixin, DpiaSignOffMixin, FixedSchoolMixin, ServiceAdmin, SchoolScopedAdmin
):
    """Enabling without a notice, an alternative and a DPIA the school's DPO signed off is
    refused on the form (the model's `clean`) and by `purpose_update` itself, from the same
    `Purpose.enabling_problems`. A purpose enabled before sign-offs were recorded stays
    enabled and is flagged "DPIA not signed off" until its DPO signs it off here."""

    list_display = ["code", "name", "school", "enabled", "dpia_reference", "dpia_status"]
    list_filter = ["enabled", DpiaFilter]
    inlines = [PurposeTextInline, NoticeInline, DpiaSignOffInline]
    actions = ["sign_off_dpia"]  # DpiaSignOffMixin

    def service_create(self, request, form) -> Purpose:
        data = form.cleaned_data
        return purpose_create(
            school=data["school"],
            code=data["code"],
            name=data["name"],
            description=data["description"],
            alternative=data["alternative"],
            dpia_reference=data["dpia_reference"],
            actor=staff_actor(request),
        )

    def service_update(self, request, obj, form) -> Purpose:
        return purpose_update(purpose=obj, actor=staff_actor(request), **form_changes(form))

    def service_delete(self, request, obj) -> None:
        purpose_delete(purpose=obj, actor=staff_actor(request))


class GuardianshipInline(SchoolScopedInline):
    """Offers (and accepts) the guardians of the staff member's schools only; a guardian of
    another school is linked from "Add guardian" by their address."""

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
class StudentAdmin(FixedSchoolMixin, ServiceAdmin, SchoolScopedAdmin):
    """A child leaves through `student_leave` and erasure, which remove every copy of their
    data; deleting the row would leave photos, the data key and holders' copies behind."""

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

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def service_create(self, request, form) -> Student:
        data = form.cleaned_data
        return student_create(
            school=data["school"],
            external_id=data["external_id"],
            name=data["name"],
            date_of_birth=data["date_of_birth"],
            class_name=data["class_name"],
            actor=staff_actor(request),
        )

    def service_update(self, request, obj, form) -> Student:
        data = form.cleaned_data
        return student_update(
            student=obj,
            external_id=data["external_id"],
            name=data["name"],
            date_of_birth=data["date_of_birth"],
            class_name=data["class_name"],
            actor=staff_actor(request),
        )

    def save_formset(self, request, form, formset, change):
        """The guardians inline: unlink, change, then link (each refreshes the child)."""
        actor = staff_actor(request)
        formset.save(commit=False)  # sorts the rows into deleted, changed and new ones
        for link in formset.deleted_objects:
            guardianship_unlink(guardianship=link, actor=actor)
        for link, fields in formset.changed_objects:
            values = {name: getattr(link, name) for name in fields}
            guardianship_update(guardianship=stored(link), actor=actor, **values)
        for link in formset.new_objects:
            guardianship_link(
                guardian=link.guardian,
                student=form.instance,
                parental_responsibility=link.parental_responsibility,
                relationship=link.relationship,
                actor=actor,  # queues the school's notice to the guardian
            )

    @admin.action(description="Record the child's own refusal (all purposes)")
    def record_child_refusal(self, request, queryset):
        for student in queryset:
            child_refusal_record(
                student=student,
                actor=staff_actor(request),
                recorded_by=request.user,
                note="Recorded in admin",
            )
        messages.success(request, f"Recorded the refusal of {queryset.count()} child(ren).")


@admin.register(StaffMembership)
class StaffMembershipAdmin(ServiceAdmin, SchoolScopedAdmin):
    list_display = ["user", "school", "role"]

    def has_module_permission(self, request) -> bool:
        return request.user.is_superuser

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "user":  # staff accounts only, never a guardian's
            kwargs["queryset"] = (
                get_user_model()
                .objects.filter(is_staff=True)
                .exclude(username__startswith=GUARDIAN_USERNAME_PREFIX)
            )
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def service_create(self, request, form) -> StaffMembership:
        return staff_membership_create(actor=staff_actor(request), **form.cleaned_data)

    def service_update(self, request, obj, form) -> StaffMembership:
        return staff_membership_update(
            membership=obj, actor=staff_actor(request), **form_changes(form)
        )

    def service_delete(self, request, obj) -> None:
        staff_membership_delete(membership=obj, actor=staff_actor(request))


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
