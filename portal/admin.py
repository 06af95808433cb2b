"""Admin for exports, campaigns, API keys, the roster import page, the dashboard, each school's
record of processing (linked from the school's page) and the page where a new staff member sets
their password (from `create_staff`'s link).

Campaigns and API keys are written through their services (audited). Django's accounts and
the Celery beat schedules are re-registered by `admin_platform`; the student admin gains its
"print sign-in sheets" action in `admin_child_links`.
"""

from __future__ import annotations

import json
from datetime import timedelta

from django import forms
from django.contrib import admin, messages
from django.contrib.auth import views as auth_views
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import Count, Q
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse, reverse_lazy
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from knox.models import AuthToken

from biometrics.models import ErasureRequest, ErasureStatus
from consent.accounts import is_guardian_account
from consent.actors import Actor
from consent.admin_doors import ServiceAdmin, staff_actor
from consent.admin_scoping import SchoolScopedAdmin, scope, staff_school_ids
from consent.audit import audit_record
from consent.models import (
    ConsentDecision,
    Decision,
    Purpose,
    RosterImport,
    School,
    Student,
    StudentStatus,
)
from consent.roster import roster_job_create
from consent.rules import load_for_rule, purpose_statuses

from . import (
    admin_child_links,  # noqa: F401 - the student admin's sign-in sheets action
    admin_platform,  # noqa: F401 - re-registers the accounts and schedules admins
)
from .auth import api_key_revoke
from .campaigns import campaign_coverage, campaign_create, campaign_delete
from .models import ApiKey, ConsentCampaign, Export
from .processing_record import processing_record, processing_record_csv


@admin.register(Export)
class ExportAdmin(SchoolScopedAdmin):
    """Read-only: an export leaves through its expiry job, which deletes its file too (a row
    deleted here would leave a child's whole data package behind on disk)."""

    school_path = "student__school"
    list_display = [
        "requested_at",
        "student",
        "guardian",
        "status",
        "progress",
        "size",
        "expires_at",
    ]
    list_filter = ["status"]
    exclude = ["storage_name"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(ConsentCampaign)
class ConsentCampaignAdmin(ServiceAdmin, SchoolScopedAdmin):
    list_display = ["__str__", "school", "emails_sent", "notices_resent", "coverage"]
    fields = ["school", "purpose", "class_name", "emails_sent", "notices_resent", "coverage"]
    readonly_fields = ["emails_sent", "notices_resent", "coverage"]

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "purpose":
            kwargs["queryset"] = scope(Purpose.objects.filter(enabled=True), request.user, "school")
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    @admin.display(description="Coverage")
    def coverage(self, obj) -> str:
        if not obj.pk:
            return "—"
        counts = campaign_coverage(obj)
        return ", ".join(
            f"{counts.get(k, 0)} {k.replace('_', ' ')}"
            for k in ("granted", "objected", "undecided", "child_refused")
        )

    def service_create(self, request, form) -> ConsentCampaign:
        campaign = campaign_create(
            school=form.cleaned_data["school"],
            purpose=form.cleaned_data["purpose"],
            class_name=form.cleaned_data["class_name"],
            created_by=request.user,
            actor=staff_actor(request),
        )
        messages.success(
            request,
            f"Emailed {campaign.emails_sent} guardian(s) who have not decided yet; queued the "
            f"school's notice again for {campaign.notices_resent} it had not reached.",
        )
        return campaign

    def service_delete(self, request, obj) -> None:
        campaign_delete(campaign=obj, actor=staff_actor(request))

    def has_change_permission(self, request, obj=None) -> bool:
        # A sent campaign is a record; only the list needs "change".
        return obj is None and super().has_change_permission(request, obj)


# django-rest-knox registers an admin for parents' bearer tokens that lists every family's and
# creates a token for any account, unaudited. A token is revoked by its holder (DELETE
# /api/v1/auth/token/, "sign out everywhere"), never handed out here.
admin.site.unregister(AuthToken)


@admin.register(ApiKey)
class ApiKeyAdmin(SchoolScopedAdmin):
    """School API keys: listed and revoked here (`api_key_revoke`, audited). They are created
    with the `create_api_key` command, the only place the secret is ever shown; neither the
    secret nor its hash appears here."""

    list_display = [
        "prefix",
        "name",
        "school",
        "scope_list",
        "created_at",
        "last_used_at",
        "expires_at",
        "revoked_at",
    ]
    list_filter = [("revoked_at", admin.EmptyFieldListFilter)]
    fields = list_display
    readonly_fields = fields
    actions = ["revoke"]

    @admin.display(description="Scopes")
    def scope_list(self, obj) -> str:
        return ", ".join(obj.scopes)

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # revoked keys stay, so the audit trail can name them

    def has_revoke_permission(self, request) -> bool:
        return request.user.has_perm("portal.change_apikey")

    @admin.action(description="Revoke the selected keys", permissions=["revoke"])
    def revoke(self, request, queryset):
        revoked = [
            api_key_revoke(key=key, actor=staff_actor(request))
            for key in queryset.filter(revoked_at__isnull=True)
        ]
        messages.success(request, f"Revoked {len(revoked)} key(s).")


ROSTER_MAX_BYTES = 20 * 1024 * 1024
ROSTER_TOO_LARGE = _("The file is larger than 20 MB; split the roster into smaller files.")
ROSTER_NOT_CSV = _("This is not a roster CSV: %(problem)s")
ROSTER_NOT_UTF8 = _("The file is not UTF-8 text; save the spreadsheet as “CSV UTF-8”.")


class RosterForm(forms.Form):
    school = forms.ModelChoiceField(label=_("School"), queryset=School.objects.none())
    csv = forms.FileField(label=_("Roster CSV"))

    def clean_csv(self):
        upload = self.cleaned_data["csv"]
        if upload.size > ROSTER_MAX_BYTES:
            raise forms.ValidationError(ROSTER_TOO_LARGE)
        return upload


def _may_import(request) -> None:
    if not request.user.has_perm("consent.add_student"):
        raise PermissionDenied


def roster_view(request):
    """Upload a roster: the import is queued (a worker runs it in chunks) and this page sends
    the staff member to its progress page at once, whatever the roster's size."""
    _may_import(request)
    form = RosterForm(request.POST or None, request.FILES or None)
    schools = scope(School.objects.all(), request.user, "pk")
    form.fields["school"].queryset = schools
    if request.method == "POST" and form.is_valid():
        upload = form.cleaned_data["csv"]
        try:
            job = roster_job_create(
                school=form.cleaned_data["school"],
                data=upload.read(),
                filename=upload.name or "",
                user=request.user,
            )
        except UnicodeDecodeError:
            form.add_error("csv", ROSTER_NOT_UTF8)
        except ValueError as exc:
            form.add_error("csv", ROSTER_NOT_CSV % {"problem": exc})
        else:
            return redirect("admin:guardian-roster-job", job_id=job.pk)
    context = {
        **admin.site.each_context(request),
        "title": _("Import the roster"),
        "form": form,
        "jobs": RosterImport.objects.filter(school__in=schools).select_related("school")[:10],
    }
    return TemplateResponse(request, "admin/roster_import.html", context)


def roster_job_view(request, job_id: int):
    """An import's progress (the page reloads itself until it ends), then its report."""
    _may_import(request)
    schools = scope(School.objects.all(), request.user, "pk")
    job = get_object_or_404(
        RosterImport.objects.select_related("school"), pk=job_id, school__in=schools
    )
    context = {
        **admin.site.each_context(request),
        "title": _("Roster import"),
        "job": job,
    }
    return TemplateResponse(request, "admin/roster_job.html", context)


def dashboard_view(request):
    """Consent coverage per purpose; open erasures; what must be destroyed in 30 days."""
    ids = staff_school_ids(request.user)
    if ids == set():
        raise PermissionDenied
    schools = scope(School.objects.all(), request.user, "pk")
    now = timezone.now()
    soon = now + timedelta(days=30)
    rows = []
    for school in schools:
        students = Student.objects.filter(school=school, status=StudentStatus.ON_ROLL)
        loaded = load_for_rule(students.values("pk"))
        per_purpose: dict = {}
        for student in loaded.values():
            for s in purpose_statuses(student, at=now):
                bucket = per_purpose.setdefault(s.purpose.name, {"active": 0, "inactive": 0})
                bucket["active" if s.active else "inactive"] += 1
        erasures = ErasureRequest.objects.filter(school=school).aggregate(
            open=Count("pk", filter=Q(status__in=[ErasureStatus.PENDING, ErasureStatus.RUNNING])),
            attention=Count("pk", filter=Q(status=ErasureStatus.NEEDS_ATTENTION)),
        )
        leavers_due = (
            Student.objects.filter(
                school=school,
                status=StudentStatus.LEAVER,
                left_on__lte=soon - timedelta(days=school.leaver_window_days),
                templates__isnull=False,
            )
            .distinct()
            .count()
        )
        validity = timedelta(days=school.consent_validity_days)
        consents_ending = ConsentDecision.objects.filter(
            student__school=school,
            decision=Decision.GRANT,
            at__gt=now - validity,
            at__lte=soon - validity,
        ).count()
        rows.append(
            {
                "school": school,
                "purposes": per_purpose,
                "erasures": erasures,
                "leavers_due": leavers_due,
                "consents_ending": consents_ending,
            }
        )
    context = {**admin.site.each_context(request), "title": "Dashboard", "rows": rows}
    return TemplateResponse(request, "admin/dashboard.html", context)


class StaffSetPasswordView(auth_views.PasswordResetConfirmView):
    """A staff member sets their password from `create_staff`'s link: Django's token, one use
    (it covers the password hash and last sign-in), valid PASSWORD_RESET_TIMEOUT. A guardian's
    account has no password to set, whatever the link."""

    template_name = "registration/password_reset_confirm.html"
    success_url = reverse_lazy("admin:guardian-set-password-done")

    def get_user(self, uidb64):
        user = super().get_user(uidb64)
        staff = user is not None and user.is_staff and not is_guardian_account(user)
        return user if staff else None

    def get_context_data(self, **kwargs):
        return {**super().get_context_data(**kwargs), **admin.site.each_context(self.request)}

    def form_valid(self, form):
        with transaction.atomic():
            response = super().form_valid(form)
            audit_record(
                "staff.password_set", actor=Actor.staff(form.user), data={"user": form.user.pk}
            )
        return response


class StaffSetPasswordDoneView(auth_views.PasswordResetCompleteView):
    template_name = "registration/password_reset_complete.html"

    def get_context_data(self, **kwargs):
        return {
            **super().get_context_data(**kwargs),
            **admin.site.each_context(self.request),
            "login_url": reverse("admin:login"),
        }


RECORD_FORMATS = {"json": "application/json", "csv": "text/csv; charset=utf-8"}


def record_of_processing_view(request, school_id: int, fmt: str):
    """The school's record of processing (GDPR Art 30) as a download, for staff of that
    school; each download is audited (who, which school, which format)."""
    if fmt not in RECORD_FORMATS or not request.user.has_perm("consent.view_school"):
        raise PermissionDenied
    school = get_object_or_404(scope(School.objects.all(), request.user, "pk"), pk=school_id)
    now = timezone.now()
    record = processing_record(school, now=now)
    audit_record(
        "school.record_of_processing_downloaded",
        actor=staff_actor(request),
        school_id=school.pk,
        data={"format": fmt, "purposes": len(record["activities"])},
    )
    body = (
        json.dumps(record, indent=1, ensure_ascii=False)
        if fmt == "json"
        else processing_record_csv(record)
    )
    response = HttpResponse(body, content_type=RECORD_FORMATS[fmt])
    name = f"record-of-processing-{school.slug}-{now:%Y-%m-%d}.{fmt}"
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


_original_get_urls = admin.site.get_urls


def _get_urls():
    return [
        path("dashboard/", admin.site.admin_view(dashboard_view), name="guardian-dashboard"),
        path(
            "set-password/<uidb64>/<token>/",
            StaffSetPasswordView.as_view(),
            name="guardian-set-password",
        ),
        path(
            "set-password/done/",
            StaffSetPasswordDoneView.as_view(),
            name="guardian-set-password-done",
        ),
        path("roster/", admin.site.admin_view(roster_view), name="guardian-roster"),
        path(
            "roster/<int:job_id>/",
            admin.site.admin_view(roster_job_view),
            name="guardian-roster-job",
        ),
        path(
            "schools/<int:school_id>/record-of-processing.<str:fmt>",
            admin.site.admin_view(record_of_processing_view),
            name="guardian-record-of-processing",
        ),
        *_original_get_urls(),
    ]


admin.site.get_urls = _get_urls
admin.site.site_header = "Guardian — school administration"
admin.site.index_template = "admin/guardian_index.html"
