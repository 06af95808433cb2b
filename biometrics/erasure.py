"""Erasure of everything held about a child, in every system, verified (SPEC §4).

The database holds the state of every erasure: one ErasureRequest per child at a time, one
ErasureStep per system. Tasks carry step ids only. Each step is claimed with a compare-and-set,
acts idempotently, verifies, and records the attempt. The child's data key is destroyed last,
once every other step is verified; then the request is sealed with a signed receipt.

A worker killed mid-step, a restarted broker or a holder that is down only delay this: the
watchdog re-drives any step that has not moved for ERASURE_STUCK_SECONDS.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.db.models import F
from django.db.models.functions import Greatest
from django.utils import timezone

from consent.actors import Actor
from consent.audit import audit_record
from consent.models import Student

from .crypto import KeyDestroyed, child_key_destroy, child_key_for_reading
from .holder_protocol import HolderRejected, HolderUnavailable
from .holders import client_for
from .models import (
    ErasureRequest,
    ErasureStatus,
    ErasureStep,
    FaceTemplate,
    Holder,
    Photo,
    RecognitionEvent,
)
from .storage import subject_files, subject_files_delete

log = logging.getLogger(__name__)

OPEN = [ErasureStatus.PENDING, ErasureStatus.RUNNING, ErasureStatus.NEEDS_ATTENTION]
PORTAL_DB = "Guardian portal database"
PHOTO_STORAGE = "Photo storage"
MATCH_CACHE = "Match cache"
KEY_STORE = "Child's data key"
EVENT_BATCH = 5000

VERIFICATION = {
    "database": "no photo, template or recognition event rows left for the child, so "
    "identification can no longer answer with the child",
    "media": "the child's photo folder lists no files",
    "cache": "the match index was rebuilt and holds none of the child's templates",
    "http": "the holder answered 404 to GET /subjects/{subject} after erasing",
    "key": "the child's data key is destroyed: its ciphertext can no longer be decrypted",
}


class StepFailed(Exception):
    """A step could not finish now; it will be retried."""


def erasure_steps_for(school_id: int) -> list[ErasureStep]:
    """The systems an erasure must reach; the key step is destroyed last."""
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
    """Open an erasure of everything held about the child, or join the one already open.

    Joins the caller's transaction; the steps are queued after commit.
    """
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
    transaction.on_commit(lambda: erasure_dispatch(request_id=request.pk))
    return request


# A step runs once the kinds it waits for are verified: the match cache is dropped after the
# database rows are gone (so no process can rebuild it with the child in it), and the key is
# destroyed last, once every copy is known to be gone.
PREREQUISITES = {
    "cache": {"database"},
    "key": {"database", "media", "cache", "http"},
}
# Steps on the portal's own stores run one after another in a single task (each is a few
# queries or a folder); each holder gets a task of its own, so a slow or failing holder
# delays nobody else. Whichever task finds the last other step verified destroys the key.
LOCAL_KINDS = frozenset({"database", "media", "cache", "key"})


def _runnable(step: ErasureStep, steps: list[ErasureStep]) -> bool:
    waits_for = PREREQUISITES.get(step.kind, set())
    return all(s.status == ErasureStatus.VERIFIED for s in steps if s.kind in waits_for)


def _steps_of(request_id) -> list[ErasureStep]:
    return list(ErasureStep.objects.filter(request_id=request_id).select_related("holder"))


def erasure_dispatch(*, request_id) -> int:
    """Queue what an open request can do now: a task per runnable holder step, and one task
    for the portal's own runnable steps (it runs the rest of them in turn). Returns how many."""
    from .tasks import erasure_step_task  # noqa: PLC0415 - tasks import this module

    steps = _steps_of(request_id)
    queued = 0
    local_queued = False
    for step in steps:
        if step.status == ErasureStatus.VERIFIED or not _runnable(step, steps):
            continue
        if step.kind in LOCAL_KINDS:
            if local_queued:
                continue
            local_queued = True
        erasure_step_task.delay(step.pk)
        queued += 1
    return queued


# --- one step ---------------------------------------------------------------------------------


def erasure_step_run(*, step_id: int) -> ErasureStep:
    """Run one step, then the portal's own steps it unlocks. Idempotent; safe to deliver twice.

    1. A step not yet runnable is left alone (it is run when its prerequisites are verified).
    2. Claim it, act on the system (every action is idempotent: erasing nothing is success),
       verify from the outside; only then mark it verified.
    3. Continue: run the portal's own steps that are now runnable (the key last), and seal the
       request when every step is verified. A redelivered, already verified step continues too,
       so a task that failed after its own step still finishes the chain on retry.
    """
    step = ErasureStep.objects.select_related("request", "holder").get(pk=step_id)
    request = step.request
    if step.status != ErasureStatus.VERIFIED:
        if not _runnable(step, _steps_of(request.pk)):
            return step
        _step_claim(step, running_too=True)  # sent to this task: run it even if marked running
        _step_execute(step, request)
    _continue(request)
    return step


def _continue(request: ErasureRequest) -> None:
    """Run the portal's own steps that are runnable now, one by one; seal when all are done.

    A step another task is running is left to it (claimed with a compare-and-set), so two
    holders finishing together destroy the key once."""
    while True:
        steps = _steps_of(request.pk)
        pending = [s for s in steps if s.status != ErasureStatus.VERIFIED]
        if not pending:
            erasure_seal(request_id=request.pk)
            return
        step = next((s for s in pending if s.kind in LOCAL_KINDS and _runnable(s, steps)), None)
        if step is None or not _step_claim(step, running_too=False):
            return  # holders still at work, or another task has it; they continue from there
        step.request = request
        _step_execute(step, request)


def _step_claim(step: ErasureStep, *, running_too: bool) -> bool:
    """Mark the step running and count the attempt, unless it is verified (or, with
    `running_too=False`, already running). True when this caller holds it."""
    claimable = ErasureStep.objects.filter(pk=step.pk).exclude(status=ErasureStatus.VERIFIED)
    if not running_too:
        claimable = claimable.exclude(status=ErasureStatus.RUNNING)
    claimed = claimable.update(
        status=ErasureStatus.RUNNING, attempts=F("attempts") + 1, updated_at=timezone.now()
    )
    step.attempts += 1
    return bool(claimed)


def _step_execute(step: ErasureStep, request: ErasureRequest) -> None:
    """Act, verify, record the result. Raises (after recording) when it failed."""
    if request.status == ErasureStatus.PENDING:
        ErasureRequest.objects.filter(pk=request.pk, status=ErasureStatus.PENDING).update(
            status=ErasureStatus.RUNNING
        )
        request.status = ErasureStatus.RUNNING
    try:
        erased = ACTIONS[step.kind](step)
    except (HolderUnavailable, HolderRejected, StepFailed, OSError) as exc:
        _record_failure(step, exc)
        raise
    now = timezone.now()
    ErasureStep.objects.filter(pk=step.pk).exclude(status=ErasureStatus.VERIFIED).update(
        status=ErasureStatus.VERIFIED,
        items_erased=Greatest(F("items_erased"), erased),
        verified_at=now,
        updated_at=now,
        last_error="",
    )
    step.status, step.verified_at, step.last_error = ErasureStatus.VERIFIED, now, ""
    step.items_erased = max(step.items_erased, erased)


def _record_failure(step: ErasureStep, exc: Exception) -> None:
    """Record the attempt; after ERASURE_ATTEMPTS_BEFORE_ATTENTION, escalate to the DPO once."""
    message = f"{type(exc).__name__}: {exc}"[:300]
    escalate = step.attempts >= settings.ERASURE_ATTEMPTS_BEFORE_ATTENTION
    # Pending again (the task's retry, or the watchdog, runs it), or needs attention.
    new_status = ErasureStatus.NEEDS_ATTENTION if escalate else ErasureStatus.PENDING
    with transaction.atomic():
        changed = (
            ErasureStep.objects.filter(pk=step.pk)
            .exclude(status=ErasureStatus.VERIFIED)
            .update(status=new_status, last_error=message, updated_at=timezone.now())
        )
        first_escalation = (
            escalate
            and changed
            and not ErasureRequest.objects.filter(
                pk=step.request_id, status=ErasureStatus.NEEDS_ATTENTION
            ).exists()
        )
        if escalate:
            ErasureRequest.objects.filter(pk=step.request_id).exclude(
                status=ErasureStatus.VERIFIED
            ).update(status=ErasureStatus.NEEDS_ATTENTION)
        if first_escalation:
            audit_record(
                "erasure.needs_attention",
                actor=Actor.system("erasure worker"),
                school_id=step.request.school_id,
                subject=step.request.subject_id,
                data={"erasure": str(step.request_id), "system": step.system, "error": message},
            )
    log.warning("erasure step %s (%s) failed: %s", step.pk, step.system, message)
    if first_escalation:
        _email_dpo(step, message)


def _email_dpo(step: ErasureStep, message: str) -> None:
    school = step.request.school
    if not school.dpo_email:
        return
    send_mail(
        f"Guardian: an erasure needs attention ({step.system})",
        (
            f"Erasure {step.request_id} could not reach {step.system} after {step.attempts} "
            f"attempts. Last error: {message}\n\nGuardian keeps retrying. Check the system, "
            f"or open the erasure in admin and use 'retry now'."
        ),
        None,
        [school.dpo_email],
    )


# --- actions: each erases, verifies, and returns how many items it erased ---------------------


def _erase_database(step: ErasureStep) -> int:
    """Delete the child's events (in batches), templates and photo rows; verify none is left.

    With no template row left, no match index built from now on can hold the child, and
    identify() answers only for children who still have a template row — so the child's former
    face identifies no one (tests/test_erasure.py checks it with the real face). Rebuilding an
    index here to show it again would cost every erasure a decryption of the whole school.
    """
    request = step.request
    student_id = request.student_id
    erased = 0
    while True:  # in batches, so no transaction holds a long lock
        with transaction.atomic():
            ids = list(
                RecognitionEvent.objects.filter(student_id=student_id).values_list("pk", flat=True)[
                    :EVENT_BATCH
                ]
            )
            if not ids:
                break
            erased += RecognitionEvent.objects.filter(pk__in=ids).delete()[0]
    from .matching import match_index_bump  # noqa: PLC0415

    with transaction.atomic():
        templates = FaceTemplate.objects.filter(student_id=student_id)
        erased += templates.count()
        templates.delete()  # copies' bookkeeping rows go with them
        photos = Photo.objects.filter(student_id=student_id)
        erased += photos.count()
        photos.delete()
        match_index_bump(request.school_id)
    left = (
        Photo.objects.filter(student_id=student_id).count()
        + FaceTemplate.objects.filter(student_id=student_id).count()
        + RecognitionEvent.objects.filter(student_id=student_id).count()
    )
    if left:
        raise StepFailed(f"{left} rows still present")
    return erased


def _erase_media(step: ErasureStep) -> int:
    erased = subject_files_delete(step.request.subject_id)
    if subject_files(step.request.subject_id):
        raise StepFailed("photo files still present")
    return erased


def _erase_cache(step: ErasureStep) -> int:
    """Invalidate every process's match index. It runs after the database step, so an index
    rebuilt from now on cannot contain the child; checked without rebuilding one."""
    from .matching import _current_version, match_cache_forget, match_index_bump  # noqa: PLC0415

    request = step.request
    before = _current_version(request.school_id)
    with transaction.atomic():
        match_index_bump(request.school_id)  # every process reloads before its next match
    match_cache_forget(request.school_id)
    if _current_version(request.school_id) == before:
        raise StepFailed("the match index version did not change")
    if FaceTemplate.objects.filter(student_id=request.student_id).exists():
        raise StepFailed("the child's templates are still in the database")
    return 0


def _erase_http(step: ErasureStep) -> int:
    if step.holder is None:
        return 0  # the holder was removed from the configuration; nothing to reach
    client = client_for(step.holder, timeout=settings.HOLDER_TIMEOUT_SECONDS)
    subject = str(step.request.subject_id)
    erased = client.delete_subject(subject)
    if client.get_subject(subject) is not None:
        raise StepFailed("the holder still reports data for the subject")
    return erased


def _erase_key(step: ErasureStep) -> int:
    student = Student(pk=step.request.student_id)
    destroyed = child_key_destroy(student)
    try:
        child_key_for_reading(student.pk)
    except KeyDestroyed:
        return int(destroyed)
    raise StepFailed("the data key can still be read")


ACTIONS = {
    "database": _erase_database,
    "media": _erase_media,
    "cache": _erase_cache,
    "http": _erase_http,
    "key": _erase_key,
}


# --- advancing and sealing --------------------------------------------------------------------


def erasure_seal(*, request_id) -> ErasureRequest:
    """Mark the request verified, sign its receipt, tell the parents. Once only (CAS)."""
    from .receipts import erasure_receipt_build, erasure_receipt_sign  # noqa: PLC0415

    with transaction.atomic():
        request = ErasureRequest.objects.select_for_update().get(pk=request_id)
        if request.status == ErasureStatus.VERIFIED:
            return request
        now = timezone.now()
        request.status = ErasureStatus.VERIFIED
        request.completed_at = now
        request.receipt = erasure_receipt_build(request)
        request.receipt_signature = erasure_receipt_sign(request.receipt)
        request.save(update_fields=["status", "completed_at", "receipt", "receipt_signature"])
        audit_record(
            "erasure.verified",
            actor=Actor.system("erasure worker"),
            school_id=request.school_id,
            subject=request.subject_id,
            data={
                "erasure": str(request.pk),
                "systems": [
                    {"system": s["system"], "items": s["items_erased"], "at": s["verified_at"]}
                    for s in request.receipt["systems"]
                ],
            },
        )
        transaction.on_commit(lambda: _email_parents(request))
    return request


def _email_parents(request: ErasureRequest) -> None:
    from django.template.loader import render_to_string  # noqa: PLC0415
    from django.urls import reverse  # noqa: PLC0415
    from django.utils import translation  # noqa: PLC0415

    if request.student_id is None:
        return
    url = settings.SITE_URL.rstrip("/") + reverse("portal:erasure", args=[request.pk])
    for link in request.student.guardianships.select_related("guardian"):
        guardian = link.guardian
        with translation.override(guardian.language):
            body = render_to_string(
                "portal/email/erasure_done.txt", {"guardian": guardian, "url": url}
            )
            subject = render_to_string("portal/email/erasure_done_subject.txt").strip()
        send_mail(subject, body, None, [guardian.email])


# --- the watchdog -----------------------------------------------------------------------------


def erasure_watchdog(*, now=None) -> int:
    """Re-drive every step of an open erasure that has not moved for a while. Returns how many.

    The database, not the broker, says what is left to do: a message lost with a dead worker
    or a restarted Redis is simply sent again.
    """
    now = now or timezone.now()
    stale_before = now - timedelta(seconds=settings.ERASURE_STUCK_SECONDS)
    requests = ErasureRequest.objects.filter(status__in=OPEN).values_list("pk", flat=True)
    redriven = 0
    for request_id in requests:
        stuck = ErasureStep.objects.filter(request_id=request_id, updated_at__lt=stale_before)
        stuck = stuck.exclude(status=ErasureStatus.VERIFIED)
        if not stuck.exists():
            continue
        stuck.update(updated_at=now)
        redriven += erasure_dispatch(request_id=request_id)
    if redriven:
        audit_record(
            "erasure.watchdog_redrove",
            actor=Actor.system("erasure watchdog"),
            data={"steps": redriven},
        )
    return redriven


def erasure_open_for(student) -> ErasureRequest | None:
    return ErasureRequest.objects.filter(student=student, status__in=OPEN).first()


def erasure_request_by_parent(*, student: Student, guardian, ip: str = "", user_agent: str = ""):
    """ "Delete everything": stop every active purpose (this parent's no wins) and erase.

    1. Open the erasure (trigger parent_request), or join the open one.
    2. For each purpose still active, record this parent's withdrawal (if they had granted)
       or objection, so no one can re-enrol the child until a parent decides again.
    """
    from consent.models import Decision, Method  # noqa: PLC0415
    from consent.rules import load_for_rule, purpose_statuses  # noqa: PLC0415
    from consent.services import consent_decide  # noqa: PLC0415

    actor = Actor.guardian(guardian)
    with transaction.atomic():
        request = erasure_request_open(student=student, trigger="parent_request", actor=actor)
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
