"""Every view of a child's biometric data is recorded and shown to the parent
(docs/architecture.md, "The audit trail")."""

from __future__ import annotations

from consent.actors import Actor
from consent.audit import audit_record
from consent.models import Student


def access_record(*, student: Student, actor: Actor, action: str, data: dict | None = None) -> None:
    audit_record(
        action,
        actor=actor,
        school_id=student.school_id,
        subject=student.subject_id,
        data=data or {},
    )
