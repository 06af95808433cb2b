"""Erasures asked for by a parent ("delete everything") or re-driven by staff."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from consent.actors import Actor
from consent.audit import audit_record
from consent.models import Decision, Guardian, Method, Student
from consent.rules import load_for_rule, purpose_statuses
from consent.services import consent_decide

from ..erasure import erasure_dispatch, erasure_open
from ..models import ErasureRequest, ErasureStatus, ErasureStep


def erasure_request_by_parent(
    *, student: Student, guardian: Guardian, ip: str = "", user_agent: str = ""
) -> ErasureRequest:
    """ "Delete everything": stop every active purpose (this parent's no wins) and erase.

    1. Open the erasure (trigger parent_request), or join the open one.
    2. For each purpose still active, record this parent's withdrawal (if they had granted)
       or objection, so no one can re-enrol the child until a parent decides again.
    """
    actor = Actor.guardian(guardian)
    with transaction.atomic():
        request = erasure_open(student=student, trigger="parent_request", actor=actor)
        loaded = load_for_rule([student.pk])[student.pk]
        for status in purpose_statuses(loaded):
            if not status.active:
                continue
            mine = [
                d
                for d in loaded.decisions.all()
                if d.guardian_id == guardian.pk and d.purpose_id == status.purpose.pk
            ]
            latest = max(mine, key=lambda d: (d.at, d.pk)) if mine else None
            decision = (
                Decision.WITHDRAW
                if latest and latest.decision == Decision.GRANT
                else Decision.OBJECT
            )
            consent_decide(
                student=student,
                purpose=status.purpose,
                guardian=guardian,
                decision=decision,
                notice_version=None,
                method=Method.WEB,
                ip=ip,
                user_agent=user_agent,
            )
    return request


def erasure_retry(*, erasure: ErasureRequest, actor: Actor) -> int:
    """Re-drive an erasure now (staff, after fixing what stopped it). Returns the steps queued.

    1. Stamp its unverified steps as just moved (the watchdog leaves them to this re-drive).
    2. Audit the retry; commit.
    3. Queue every runnable step, after the commit, so a worker sees the stamped steps.
    """
    if erasure.status == ErasureStatus.VERIFIED:
        return 0
    with transaction.atomic():
        steps = (
            ErasureStep.objects.filter(request=erasure)
            .exclude(status=ErasureStatus.VERIFIED)
            .update(updated_at=timezone.now(), next_attempt_at=None)  # due now, not backing off
        )
        audit_record(
            "erasure.retried",
            actor=actor,
            school_id=erasure.school_id,
            subject=erasure.subject_id,
            data={"erasure": str(erasure.pk), "steps": steps},
        )
    return erasure_dispatch(request_id=erasure.pk)
