"""Opening erasures (one per child at a time) and queueing what they can do now."""

from __future__ import annotations

import itertools
import uuid
from collections import defaultdict
from collections.abc import Iterable

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from consent.actors import Actor
from consent.audit import AuditEntry, audit_record_many, audit_undo_on_error
from consent.jobs import job_enqueue
from consent.models import Student

from ..models import OPEN, ErasureRequest, ErasureStatus, ErasureStep, Holder
from .plan import STEP_TASK, awaits_confirmation, erasure_steps_for, local_kinds, runnable


def erasure_open(*, student: Student, trigger: str, actor: Actor) -> ErasureRequest:
    """Open an erasure of everything held about the child, or join the one already open.

    Joins the caller's transaction; the steps are queued after commit.
    """
    return erasure_open_many(students=[student], trigger=trigger, actor=actor)[0]


def erasure_open_many(
    *, students: Iterable[Student], trigger: str, actor: Actor
) -> list[ErasureRequest]:
    """Open erasures for many children at once (joining any already open), in a few statements.

    Joins the caller's transaction. After commit one task is queued per ERASURE_BATCH
    children for the portal's stores and per holder (each task works a whole batch).
    Returns each child's open request, in the order given.
    """
    unique = list({s.pk: s for s in students}.values())
    found = {
        r.student_id: r for r in ErasureRequest.objects.filter(student__in=unique, status__in=OPEN)
    }
    new = [s for s in unique if s.pk not in found]
    if new:
        try:
            with audit_undo_on_error():
                found.update(_requests_create(new, trigger, actor))
        except IntegrityError:
            # Another trigger opened one for some child at the same moment: join it, one by one.
            return [_request_open_one(s, trigger, actor) for s in unique]
    return [found[s.pk] for s in unique]


def _request_open_one(student: Student, trigger: str, actor: Actor) -> ErasureRequest:
    existing = ErasureRequest.objects.filter(student=student, status__in=OPEN).first()
    if existing:
        return existing
    try:
        with audit_undo_on_error():
            return _requests_create([student], trigger, actor)[student.pk]
    except IntegrityError:
        return ErasureRequest.objects.get(student=student, status__in=OPEN)


def _requests_create(
    students: list[Student], trigger: str, actor: Actor
) -> dict[uuid.UUID | None, ErasureRequest]:
    now = timezone.now()
    holders: dict[int, list[Holder]] = {}
    with transaction.atomic():
        # The pseudonym as stored now: the caller's copy of a child may predate a renewal
        # (a re-enrolment after an erasure gives the child a new one).
        subjects = dict(
            Student.objects.filter(pk__in=[s.pk for s in students]).values_list("pk", "subject_id")
        )
        requests = ErasureRequest.objects.bulk_create(
            [
                ErasureRequest(
                    student=s,
                    school_id=s.school_id,
                    subject_id=subjects[s.pk],
                    trigger=trigger,
                    requested_at=now,
                )
                for s in students
            ]
        )
        steps: list[ErasureStep] = []
        events = []
        for request in requests:
            if request.school_id not in holders:
                holders[request.school_id] = list(
                    Holder.objects.filter(school_id=request.school_id).order_by("name")
                )
            its = erasure_steps_for(request.school_id, holders[request.school_id])
            for step in its:
                step.request = request
            steps += its
            events.append(
                AuditEntry(
                    "erasure.requested",
                    actor=actor,
                    school_id=request.school_id,
                    subject=request.subject_id,
                    data={"erasure": str(request.pk), "trigger": trigger, "systems": len(its)},
                )
            )
        ErasureStep.objects.bulk_create(steps)
        audit_record_many(events)
        _dispatch_new(steps)  # queued when the outermost transaction commits
    return {r.student_id: r for r in requests}


def _dispatch_new(steps: list[ErasureStep]) -> None:
    """Queue the first step of every ERASURE_BATCH of new database steps and of each holder's
    new steps; the task for it sweeps the batch (and queues a follow-up while work is left)."""
    groups = defaultdict(list)
    for step in steps:
        if step.kind in ("database", "http"):
            groups[(step.kind, step.holder_id)].append(step.pk)
    # Round-robin over the groups, so the first children's portal stores and holders are all
    # reached early and their keys destroyed and receipts signed while the rest drain.
    firsts = [sorted(pks)[:: settings.ERASURE_BATCH] for pks in groups.values()]
    for round_ in itertools.zip_longest(*firsts):
        for pk in round_:
            if pk is not None:
                job_enqueue(STEP_TASK, pk)


def erasure_dispatch(*, request_id: uuid.UUID) -> int:
    """Queue what an open request can do now: a task per runnable holder step, and one task
    for the portal's own runnable steps (it runs the rest of them in turn). Steps backing off
    (not due yet) and holder steps awaiting a DPO's confirmation are left. Returns how many."""
    steps = list(ErasureStep.objects.filter(request_id=request_id).select_related("holder"))
    now = timezone.now()
    local = local_kinds()
    queued = 0
    local_queued = False
    for step in steps:
        if (
            step.status == ErasureStatus.VERIFIED
            or not runnable(step, steps)
            or awaits_confirmation(step)
            or (step.next_attempt_at is not None and step.next_attempt_at > now)
        ):
            continue
        if step.kind in local:
            if local_queued:
                continue
            local_queued = True
        job_enqueue(STEP_TASK, step.pk)
        queued += 1
    return queued
