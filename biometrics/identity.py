"""A child's biometric identity: the pseudonym holders and the audit trail know them by, and the
data key their photos and templates are sealed with (docs/erasure.md, "Enrolling again after
an erasure").

An erasure ends both: the key is destroyed, and holders may refuse the pseudonym for good. A
child whose parents consent again is enrolled under a new pseudonym and a new key, minted by the
first enrolment after the erasure was verified — not at the new grant, which may never lead to
an enrolment, and not during an erasure, whose steps would no longer reach what is stored.
"""

from __future__ import annotations

from uuid import UUID, uuid4

from django.db import transaction
from django.utils import timezone

from consent.actors import Actor
from consent.audit import audit_record
from consent.models import RetiredSubject, Student

from .crypto import child_key_renew
from .models import OPEN, ErasureRequest, ErasureStatus


def child_identity_renew(*, student: Student, actor: Actor) -> bool:
    """Give a child whose pseudonym was erased a new pseudonym and a new data key. Returns
    whether it did now; `student.subject_id` is the child's current pseudonym afterwards.

    1. Lock the child's row. Renew only if an erasure of everything held under the current
       pseudonym was verified and none is open; a concurrent enrolment that renewed first is
       seen here, and its pseudonym used.
    2. Retire the old pseudonym (never given out again: its erasure receipt keeps naming it) and
       take a fresh one the portal has never used.
    3. Audit old → new in one event. It carries pseudonyms only, and holders only ever see the
       new one, so no holder can link the child's two identities.
    4. Make the new data key in the key store before the commit: if that fails, the child keeps
       the old pseudonym and the next enrolment tries again (a key made by a failed attempt is
       post-erasure, so it is kept).
    """
    with transaction.atomic():
        current = Student.objects.select_for_update().values_list("subject_id", flat=True)
        old = current.get(pk=student.pk)
        student.subject_id = old
        erased = ErasureRequest.objects.filter(
            student=student, subject_id=old, status=ErasureStatus.VERIFIED
        ).exists()
        if not erased or ErasureRequest.objects.filter(student=student, status__in=OPEN).exists():
            return False
        new = _unused_subject_id()
        RetiredSubject.objects.create(subject_id=old, student=student, retired_at=timezone.now())
        Student.objects.filter(pk=student.pk, subject_id=old).update(subject_id=new)
        audit_record(
            "biometrics.identity_renewed",
            actor=actor,
            school_id=student.school_id,
            subject=new,
            data={"retired_subject": str(old)},
        )
        child_key_renew(student)
    student.subject_id = new
    return True


def _unused_subject_id() -> UUID:
    """A random pseudonym no child has or had (a collision is astronomically unlikely; checked
    because "never reused" is a promise)."""
    while True:
        candidate = uuid4()
        if not (
            Student.objects.filter(subject_id=candidate).exists()
            or RetiredSubject.objects.filter(subject_id=candidate).exists()
            or ErasureRequest.objects.filter(subject_id=candidate).exists()
        ):
            return candidate
