"""Admin for a purpose's governance: the DPO's sign-off of its DPIA (UK GDPR Art 35).

A sign-off is written by the "sign off" action only (offered to DPOs; `dpia_sign_off` checks
the DPO role at each purpose's school) and read-only everywhere else. A purpose enabled
before sign-offs were recorded is flagged "DPIA not signed off" in the list.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import Exists, OuterRef

from .admin_doors import ReadOnlyMixin, staff_actor
from .admin_scoping import AdminMixinBase, SchoolScopedInline
from .models import DpiaSignOff, StaffMembership
from .services import ConsentError, dpia_sign_off

NOT_SIGNED_OFF = "DPIA not signed off"


class DpiaSignOffInline(ReadOnlyMixin, SchoolScopedInline):
    """Who signed off which DPIA document, when: written only by the "sign off" action."""

    model = DpiaSignOff
    extra = 0
    fields = readonly_fields = ("document_reference", "signed_by", "signed_at", "note")
    verbose_name_plural = "DPIA sign-offs by the school's DPO"


class DpiaFilter(admin.SimpleListFilter):
    title = "DPIA"
    parameter_name = "dpia"

    def lookups(self, request, model_admin):
        return [("not_signed_off", NOT_SIGNED_OFF)]

    def queryset(self, request, queryset):
        if self.value() != "not_signed_off":
            return queryset
        signed = DpiaSignOff.objects.filter(
            purpose=OuterRef("pk"), document_reference=OuterRef("dpia_reference")
        )
        return queryset.exclude(Exists(signed))


class DpiaSignOffMixin(AdminMixinBase):
    """The purpose list's DPIA column and the DPO's "sign off" action."""

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("dpia_sign_offs__signed_by")

    @admin.display(description="DPIA sign-off")
    def dpia_status(self, obj) -> str:
        sign_off = obj.dpia_sign_off()
        if sign_off is None:
            return NOT_SIGNED_OFF
        return f"Signed off by {sign_off.signed_by} on {sign_off.signed_at:%Y-%m-%d}"

    def has_dpia_sign_off_permission(self, request) -> bool:
        # Offered to DPOs only; the service checks the DPO role at each purpose's school.
        return request.user.is_active and (
            StaffMembership.objects.filter(
                user_id=request.user.pk, role=StaffMembership.Role.DPO
            ).exists()
        )

    @admin.action(
        description="Sign off the DPIA named by each purpose (as its school's DPO)",
        permissions=["dpia_sign_off"],
    )
    def sign_off_dpia(self, request, queryset):
        signed = 0
        for purpose in queryset:
            try:
                dpia_sign_off(purpose=purpose, signed_by=request.user, actor=staff_actor(request))
            except ConsentError as exc:
                messages.error(request, f"{purpose}: {exc.detail}")
            else:
                signed += 1
        if signed:
            messages.success(request, f"Signed off the DPIA of {signed} purpose(s).")
