"""A DPO's confirmation that a holder no one can ask any more holds nothing of the child.

A holder removed from the configuration (or disabled) while it may hold copies keeps its step
open — needs attention — until it answers, or until the school's data protection officer records
that the copies are gone, who they are, when, and on what evidence (a vendor's deletion
certificate, a wiped device). The receipt then says the step was confirmed by hand, not checked.
"""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from consent.actors import Actor
from consent.audit import audit_record
from consent.jobs import job_enqueue

from ..models import ErasureRequest, ErasureStatus, ErasureStep
from .plan import STEP_TASK

MAX_EVIDENCE = 2000


class CannotConfirm(Exception):
    """Only an unverified step of a removed or disabled holder is confirmed by hand."""


def confirmable_steps(erasure: ErasureRequest) -> list[ErasureStep]:
    """The erasure's unverified holder steps that no one can ask any more: their holder was
    removed from the configuration, or is disabled."""
    return [
        step
        for step in erasure.steps.select_related("holder").exclude(status=ErasureStatus.VERIFIED)
        if step.kind == "http" and (step.holder is None or not step.holder.enabled)
    ]


def erasure_step_confirm(*, step: ErasureStep, evidence: str, actor: Actor) -> ErasureStep:
    """Record a DPO's manual confirmation of one holder step; the erasure then goes on (the
    key is destroyed and the receipt signed once every other step is verified too).

    1. Refuse a step that can still be checked (its holder is configured and enabled), one
       already verified, or a confirmation without evidence.
    2. Verify the step with who (the actor's pseudonymous id), when and the evidence; audit it.
    3. After commit, queue the erasure's key step (it finishes the request).
    """
    evidence = evidence.strip()
    if not evidence:
        raise CannotConfirm("say what shows the copies are gone")
    with transaction.atomic():
        locked = (
            ErasureStep.objects.select_for_update(of=("self",))
            .select_related("holder")
            .get(pk=step.pk)
        )
        if locked.status == ErasureStatus.VERIFIED:
            raise CannotConfirm("this step is verified already")
        if locked.kind != "http" or (locked.holder is not None and locked.holder.enabled):
            raise CannotConfirm("this system can still be asked: retry it instead")
        now = timezone.now()
        locked.status = ErasureStatus.VERIFIED
        locked.verified_at = now
        locked.lease_until = None
        locked.next_attempt_at = None
        locked.last_error = ""
        locked.confirmed_by = f"{actor.kind}:{actor.id}"
        locked.confirmed_at = now
        locked.confirmation_evidence = evidence[:MAX_EVIDENCE]
        locked.save(
            update_fields=[
                "status",
                "verified_at",
                "lease_until",
                "next_attempt_at",
                "last_error",
                "confirmed_by",
                "confirmed_at",
                "confirmation_evidence",
                "updated_at",
            ]
        )
        request = locked.request
        audit_record(
            "erasure.confirmed_manually",
            actor=actor,
            school_id=request.school_id,
            subject=request.subject_id,
            data={
                "erasure": str(request.pk),
                "system": locked.system,
                "evidence_chars": len(locked.confirmation_evidence),
            },
        )
        key = ErasureStep.objects.filter(request=request, kind="key").first()
        if key is not None:
            job_enqueue(STEP_TASK, key.pk)
    return locked
