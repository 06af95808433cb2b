"""Admin for biometric data, holders, erasures and retention runs — scoped to the staff's
schools. Every view of a child's photo or template is logged and shown to the parent. Holder
writes and erasure re-drives go through `biometrics.services`, audited.

The student admin gains its enrolment page here (consent's admin knows nothing of faces).
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.db.models import Case, Count, IntegerField, Q, Value, When
from django.urls import path
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from consent.actors import Actor
from consent.admin import StudentAdmin
from consent.admin_doors import ReadOnlyMixin, ServiceAdmin, form_changes, staff_actor
from consent.admin_scoping import (
    FK_SCOPES,
    AdminMixinBase,
    FixedSchoolMixin,
    SchoolScopedAdmin,
    SchoolScopedInline,
)
from consent.models import Student

from .access import access_record
from .admin_confirm import confirm_action, dpo_school_ids
from .admin_enrol import enrol_view
from .holder_guard import holder_url_problem
from .holders.protocol import HolderError
from .models import (
    ErasureRequest,
    ErasureStatus,
    ErasureStep,
    FaceTemplate,
    Holder,
    Photo,
    RecognitionEvent,
    RetentionRun,
)
from .selectors import template_embedding
from .services import (
    erasure_retry,
    holder_create,
    holder_delete,
    holder_update,
)


class EnrolStudentAdmin(StudentAdmin):
    """The student admin with its "enrol a photo" page (through `photo_enrol`)."""

    def get_urls(self):
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


admin.site.unregister(Student)
admin.site.register(Student, EnrolStudentAdmin)


FK_SCOPES[Holder] = "school"

SECRET_HELP = _(
    "Shared with the holder; it signs every request. Stored encrypted and never shown again: "
    "leave empty to keep the current one."
)


class HolderForm(forms.ModelForm):
    """The secret is write-only: typed in, sealed by the service, never rendered back."""

    base_url = forms.URLField(label=_("Base URL"), max_length=200, assume_scheme="https")
    secret = forms.CharField(
        label=_("Secret"),
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        max_length=200,
        required=False,
        help_text=SECRET_HELP,
    )

    class Meta:
        model = Holder
        fields = ["school", "name", "labels", "base_url", "enabled", "receives_templates"]

    def clean_secret(self) -> str:
        secret = self.cleaned_data["secret"]
        if self.instance.pk is None and not secret:
            raise forms.ValidationError(_("A new holder needs its secret."))
        return secret


@admin.register(Holder)
class HolderAdmin(FixedSchoolMixin, ServiceAdmin, SchoolScopedAdmin):
    """Holders: their address is checked (`holder_guard`) on the form, by the services and at
    every connection; their secret is write-only."""

    form = HolderForm
    list_display = ["name", "school", "base_url", "enabled", "receives_templates"]
    list_filter = ["enabled"]
    actions = ["test_connection"]

    def get_fields(self, request, obj=None):
        fields = list(super().get_fields(request, obj))
        if obj is not None and not self.has_change_permission(request, obj):
            fields.remove("secret")  # nothing to show a reader: it is write-only
        return fields

    def service_create(self, request, form) -> Holder:
        return holder_create(actor=staff_actor(request), **form.cleaned_data)

    def service_update(self, request, obj, form) -> Holder:
        return holder_update(holder=obj, actor=staff_actor(request), **form_changes(form))

    def service_delete(self, request, obj) -> None:
        holder_delete(holder=obj, actor=staff_actor(request))

    @admin.action(description="Test connection (signed request)")
    def test_connection(self, request, queryset):
        for holder in queryset:
            if problem := holder_url_problem(holder.base_url):
                messages.error(request, f"{holder.name}: not called. {problem}")
                continue
            try:
                subjects, _next = holder.client(timeout=5).list_subjects()
            except (HolderError, ValueError, OSError) as exc:
                messages.error(request, f"{holder.name}: no answer ({type(exc).__name__}).")
            else:
                messages.success(
                    request,
                    f"{holder.name}: answered and accepted our signature "
                    f"({len(subjects)} subjects on the first page).",
                )


# The steps of an erasure as the admin lists them (all read-only).
STEP_FIELDS = (
    "system",
    "kind",
    "status",
    "attempts",
    "items_erased",
    "last_error",
    "next_attempt_at",
    "escalated_at",
    "verified_at",
    "confirmed_by",
    "updated_at",
)


class LoggedViewMixin(AdminMixinBase):
    """Opening a child's photo or template in admin is an access the parent sees."""

    access_action = ""

    def change_view(self, request, object_id, form_url="", extra_context=None):
        response = super().change_view(request, object_id, form_url, extra_context)
        obj = self.get_object(request, object_id)
        if obj is not None and response.status_code == 200:
            access_record(
                student=obj.student,
                actor=Actor.staff(request.user),
                action=self.access_action,
                data={"object": str(obj.pk), "via": "admin"},
            )
        return response


@admin.register(Photo)
class PhotoAdmin(LoggedViewMixin, ReadOnlyMixin, SchoolScopedAdmin):
    school_path = "student__school"
    access_action = "biometrics.photo_viewed"
    list_display = ["id", "student", "status", "reason", "source", "captured_at"]
    list_filter = ["status", "source"]
    list_select_related = ["student"]
    exclude = ["storage_name"]


@admin.register(FaceTemplate)
class FaceTemplateAdmin(LoggedViewMixin, ReadOnlyMixin, SchoolScopedAdmin):
    school_path = "student__school"
    access_action = "biometrics.template_viewed"
    list_display = ["id", "student", "model", "created_at"]
    list_select_related = ["student"]
    exclude = ["ciphertext"]
    readonly_fields = ["numbers"]

    @admin.display(description="The 128 numbers")
    def numbers(self, obj) -> str:
        return ", ".join(f"{x:.4f}" for x in template_embedding(obj))


@admin.register(RecognitionEvent)
class RecognitionEventAdmin(ReadOnlyMixin, SchoolScopedAdmin):
    school_path = "student__school"
    list_display = ["at", "student", "purpose", "device", "distance"]
    list_filter = ["purpose__code", "device"]
    list_select_related = ["student", "purpose"]
    show_full_result_count = False


class ErasureStepInline(ReadOnlyMixin, SchoolScopedInline):
    model = ErasureStep
    extra = 0
    fields = readonly_fields = STEP_FIELDS


@admin.register(ErasureRequest)
class ErasureRequestAdmin(ReadOnlyMixin, SchoolScopedAdmin):
    list_display = [
        "requested_at",
        "subject_id",
        "trigger",
        "status_badge",
        "progress",
        "completed_at",
    ]
    list_filter = ["status", "trigger"]
    inlines = [ErasureStepInline]
    actions = ["retry_now", "confirm_manually"]
    exclude = ["receipt", "receipt_signature"]

    def get_queryset(self, request):
        # The erasures that need a person come first.
        return (
            super()
            .get_queryset(request)
            .annotate(
                attention=Case(
                    When(status=ErasureStatus.NEEDS_ATTENTION, then=Value(0)),
                    When(status__in=[ErasureStatus.PENDING, ErasureStatus.RUNNING], then=Value(1)),
                    default=Value(2),
                    output_field=IntegerField(),
                ),
                steps_total=Count("steps"),
                steps_done=Count("steps", filter=Q(steps__status=ErasureStatus.VERIFIED)),
            )
            .order_by("attention", "-requested_at")
        )

    @admin.display(description="Status", ordering="attention")
    def status_badge(self, obj) -> str:
        colour = {"needs_attention": "#a00", "verified": "#070"}.get(obj.status, "#555")
        return format_html('<b style="color:{}">{}</b>', colour, obj.get_status_display())

    @admin.display(description="Steps verified")
    def progress(self, obj) -> str:
        return f"{obj.steps_done}/{obj.steps_total}"

    @admin.action(description="Retry now")
    def retry_now(self, request, queryset):
        queued = sum(
            erasure_retry(erasure=erasure, actor=staff_actor(request))
            for erasure in queryset.exclude(status=ErasureStatus.VERIFIED)
        )
        messages.success(request, f"Queued {queued} step(s) again.")

    def has_confirm_permission(self, request) -> bool:
        schools = dpo_school_ids(request.user)
        return schools is None or bool(schools)

    @admin.action(
        description="Record a DPO's confirmation (removed or disabled holder)",
        permissions=["confirm"],
    )
    def confirm_manually(self, request, queryset):
        return confirm_action(self, request, queryset)


@admin.register(RetentionRun)
class RetentionRunAdmin(ReadOnlyMixin, admin.ModelAdmin):
    """A run's counts are every school's together: superusers only."""

    list_display = ["job", "as_of", "dry_run", "started_at", "finished_at", "counts"]
    list_filter = ["job", "dry_run"]

    def has_module_permission(self, request) -> bool:
        return request.user.is_active and request.user.is_superuser

    def has_view_permission(self, request, obj=None) -> bool:
        return request.user.is_active and request.user.is_superuser
