"""The erasure admin's "Record a DPO's confirmation" action (biometrics.erasure.confirmation).

For a holder removed from the configuration, or disabled, while it may hold copies: its step
stays open until the school's data protection officer records, with evidence, that the copies
are gone. Offered to superusers and to staff who are DPO of a school; each confirms only the
erasures of the schools where they are DPO.
"""

from __future__ import annotations

from django.contrib import messages
from django.template.response import TemplateResponse

from consent.admin_doors import staff_actor
from consent.models import StaffMembership

from .erasure import CannotConfirm, confirmable_steps, erasure_step_confirm
from .models import ErasureStatus


def dpo_school_ids(user) -> set[int] | None:
    """The schools where the user is DPO (None: every school, for a superuser)."""
    if user.is_superuser:
        return None
    return set(
        StaffMembership.objects.filter(user=user, role=StaffMembership.Role.DPO).values_list(
            "school_id", flat=True
        )
    )


def confirm_action(model_admin, request, queryset):
    schools = dpo_school_ids(request.user)
    erasures = queryset.exclude(status=ErasureStatus.VERIFIED)
    if schools is not None:
        erasures = erasures.filter(school_id__in=schools)
    steps = [step for erasure in erasures for step in confirmable_steps(erasure)]
    if not steps:
        messages.warning(
            request,
            "None of these erasures waits for a confirmation: only a step of a holder that was "
            "removed or disabled can be confirmed by hand (retry the others).",
        )
        return None
    evidence = request.POST.get("evidence", "").strip()
    if request.POST.get("post") == "yes" and evidence:
        confirmed = 0
        for step in steps:
            try:
                erasure_step_confirm(step=step, evidence=evidence, actor=staff_actor(request))
            except CannotConfirm as exc:
                messages.error(request, f"{step.system}: {exc}")
            else:
                confirmed += 1
        messages.success(request, f"Recorded your confirmation for {confirmed} step(s).")
        return None
    context = {
        **model_admin.admin_site.each_context(request),
        "title": "Record a DPO's confirmation",
        "steps": steps,
        "selected": [str(pk) for pk in queryset.values_list("pk", flat=True)],
        "missing_evidence": request.POST.get("post") == "yes",
        "opts": model_admin.model._meta,
    }
    return TemplateResponse(request, "admin/erasure_confirm.html", context)
