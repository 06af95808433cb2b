"""Erasure requests: one open request per child, one step per system that may hold data.

This module opens requests and lays out their steps (SPEC §4). Carrying the steps out —
workers, verification, crypto-shredding, receipts — is the erasure issue's work.
"""

from __future__ import annotations

from django.db import IntegrityError, transaction
from django.utils import timezone

from consent.actors import Actor
from consent.audit import audit_record
from consent.models import Student

from .models import ErasureRequest, ErasureStatus, ErasureStep, Holder

OPEN = [ErasureStatus.PENDING, ErasureStatus.RUNNING, ErasureStatus.NEEDS_ATTENTION]
PORTAL_DB = "Guardian portal database"
PHOTO_STORAGE = "Photo storage"
MATCH_CACHE = "Match cache"
KEY_STORE = "Child's data key"


def erasure_steps_for(school_id: int) -> list[ErasureStep]:
    """The systems an erasure must reach, in order; the key is destroyed last."""
    steps = [
        ErasureStep(system=PORTAL_DB, kind="database"),
        ErasureStep(system=PHOTO_STORAGE, kind="media"),
        ErasureStep(system=MATCH_CACHE, kind="cache"),
    ]
    steps += [
        ErasureStep(system=h.name, kind="http", holder=h)
        for h in Holder.objects.filter(school_id=school_id).order_by("name")
    ]
    steps.append(ErasureStep(system=KEY_STORE, kind="key"))
    return steps


def erasure_request_open(*, student: Student, trigger: str, actor: Actor) -> ErasureRequest:
    """Open an erasure of everything held about the child, or join the one already open."""
    existing = ErasureRequest.objects.filter(student=student, status__in=OPEN).first()
    if existing:
        return existing
    try:
        with transaction.atomic():
            request = ErasureRequest.objects.create(
                student=student,
                school_id=student.school_id,
                subject_id=student.subject_id,
                trigger=trigger,
                requested_at=timezone.now(),
            )
            steps = erasure_steps_for(student.school_id)
            for step in steps:
                step.request = request
            ErasureStep.objects.bulk_create(steps)
            audit_record(
                "erasure.requested",
                actor=actor,
                school_id=student.school_id,
                subject=student.subject_id,
                data={"erasure": str(request.pk), "trigger": trigger, "systems": len(steps)},
            )
    except IntegrityError:
        # Another trigger opened one at the same moment: join it.
        return ErasureRequest.objects.get(student=student, status__in=OPEN)
    return request
