"""Erasure of everything held about a child, in every system, verified (SPEC §4).

The database holds the state of every erasure: one ErasureRequest per child at a time, one
ErasureStep per system. Tasks carry step ids only; a task works every waiting step of its kind
(the portal's stores, or one holder), up to ERASURE_BATCH of them, claimed with SELECT ... FOR
UPDATE SKIP LOCKED. Every action is idempotent and verified, and each step's attempts, result
and error are recorded on its own row. The child's data key is destroyed last, once every other
step is verified; then the request is sealed with a signed receipt.

A worker killed mid-step, a restarted broker or a holder that is down only delay this: the
watchdog re-drives any step that has not moved for ERASURE_STUCK_SECONDS.
"""

from __future__ import annotations

import itertools
import logging
import random
from collections import Counter, defaultdict
from datetime import timedelta

from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.db.models import Case, Count, F, Q, Value, When
from django.db.models.functions import Greatest
from django.utils import timezone

from consent.actors import Actor
from consent.audit import AuditEntry, audit_record, audit_record_many
from consent.models import Student

from .crypto import child_keys_destroy, child_keys_for_reading
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


def erasure_steps_for(school_id: int, holders=None) -> list[ErasureStep]:
    """The systems an erasure must reach; the key step is destroyed last."""
    if holders is None:
        holders = Holder.objects.filter(school_id=school_id).order_by("name")
    steps = [
        ErasureStep(system=PORTAL_DB, kind="database"),
        ErasureStep(system=PHOTO_STORAGE, kind="media"),
        ErasureStep(system=MATCH_CACHE, kind="cache"),
    ]
    steps += [ErasureStep(system=h.name, kind="http", holder=h) for h in holders]
    steps.append(ErasureStep(system=KEY_STORE, kind="key"))
    return steps


def erasure_request_open(*, student: Student, trigger: str, actor: Actor) -> ErasureRequest:
    """Open an erasure of everything held about the child, or join the one already open.

    Joins the caller's transaction; the steps are queued after commit.
    """
    return erasure_requests_open(students=[student], trigger=trigger, actor=actor)[0]


def erasure_requests_open(*, students, trigger: str, actor: Actor) -> list[ErasureRequest]:
    """Open erasures for many children at once (joining any already open), in a few statements.

    Joins the caller's transaction. After commit one task is queued per ERASURE_BATCH
    children for the portal's stores and per holder (each task works a whole batch).
    Returns each child's open request, in the order given.
    """
    students = list({s.pk: s for s in students}.values())
    found = {
        r.student_id: r
        for r in ErasureRequest.objects.filter(student__in=students, status__in=OPEN)
    }
    new = [s for s in students if s.pk not in found]
    if new:
        try:
            found.update(_requests_create(new, trigger, actor))
        except IntegrityError:
            # Another trigger opened one for some child at the same moment: join it, one by one.
            return [_request_open_one(s, trigger, actor) for s in students]
    return [found[s.pk] for s in students]


def _request_open_one(student: Student, trigger: str, actor: Actor) -> ErasureRequest:
    existing = ErasureRequest.objects.filter(student=student, status__in=OPEN).first()
    if existing:
        return existing
    try:
        return _requests_create([student], trigger, actor)[student.pk]
    except IntegrityError:
        return ErasureRequest.objects.get(student=student, status__in=OPEN)


def _requests_create(students, trigger: str, actor: Actor) -> dict:
    now = timezone.now()
    holders = {}
    with transaction.atomic():
        requests = ErasureRequest.objects.bulk_create(
            [
                ErasureRequest(
                    student=s,
                    school_id=s.school_id,
                    subject_id=s.subject_id,
                    trigger=trigger,
                    requested_at=now,
                )
                for s in students
            ]
        )
        steps, events = [], []
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
    transaction.on_commit(lambda: _dispatch_new(steps))
    return {r.student_id: r for r in requests}


def _dispatch_new(steps: list[ErasureStep]) -> None:
    """Queue the first step of every ERASURE_BATCH of new database steps and of each holder's
    new steps; the task for it sweeps the batch (and queues a follow-up while work is left)."""
    from .tasks import erasure_step_task  # noqa: PLC0415 - tasks import this module

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
                erasure_step_task.delay(pk)


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


# --- running steps, in batches --------------------------------------------------------------
# A task carries one step id, but does the work of every step of that kind that is waiting, up
# to ERASURE_BATCH: a thousand erasures opened at once cost a few statements per batch, not a
# few per child. Steps are claimed with SELECT ... FOR UPDATE SKIP LOCKED (another worker's
# batch is left to it); a claimed step that stops moving is claimable again after
# ERASURE_STUCK_SECONDS. Each step's outcome is recorded on its own row.


def _claimable(now) -> Q:
    stale = now - timedelta(seconds=settings.ERASURE_STUCK_SECONDS)
    return ~Q(status=ErasureStatus.VERIFIED) & (
        ~Q(status=ErasureStatus.RUNNING) | Q(updated_at__lt=stale)
    )


def _claim(where: Q, *, limit: int, first: int | None = None) -> list[ErasureStep]:
    """Claim up to `limit` claimable steps matching `where` (`first` ahead of the others):
    mark them running and count the attempt. Returns the steps this caller now holds."""
    now = timezone.now()
    order = [Case(When(pk=first, then=Value(0)), default=Value(1)), "id"] if first else ["id"]
    with transaction.atomic():
        ids = list(
            ErasureStep.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(_claimable(now), where)
            .order_by(*order)
            .values_list("pk", flat=True)[:limit]
        )
        if not ids:
            return []
        ErasureStep.objects.filter(pk__in=ids).update(
            status=ErasureStatus.RUNNING, attempts=F("attempts") + 1, updated_at=now
        )
    steps = list(
        ErasureStep.objects.filter(pk__in=ids).select_related("request", "holder").order_by("id")
    )
    starting = {s.request_id for s in steps if s.request.status == ErasureStatus.PENDING}
    if starting:
        ErasureRequest.objects.filter(pk__in=starting, status=ErasureStatus.PENDING).update(
            status=ErasureStatus.RUNNING
        )
    return steps


def erasure_step_run(*, step_id: int) -> ErasureStep:
    """Run a step (and the waiting steps of its kind), then whatever that unlocks.

    Idempotent and safe to deliver twice: a verified step only finishes its request (destroy
    the key when everything else is verified, seal), so a task retried after its own step
    still completes the chain. A step that failed is recorded on its row; the task raises for
    its own step (Celery retries it with backoff) and queues a retry for batch-mates.
    """
    step = ErasureStep.objects.select_related("request", "holder").get(pk=step_id)
    stale = timezone.now() - timedelta(seconds=settings.ERASURE_STUCK_SECONDS)
    if step.status == ErasureStatus.RUNNING and step.updated_at >= stale:
        return step  # in another worker's batch right now; that worker finishes it
    if step.status == ErasureStatus.VERIFIED:
        _finish([step.request_id])
    elif step.kind == "http":
        _holder_sweep(step)
    elif step.kind == "key":
        _finish([step.request_id])
    else:
        _portal_sweep(step)
    step.refresh_from_db()
    return step


def _portal_sweep(step: ErasureStep) -> None:
    """The portal's own stores for this request and up to ERASURE_BATCH - 1 others waiting:
    database rows, then photo files, then the match cache (which waits for the rows)."""
    now = timezone.now()
    others = (
        ErasureStep.objects.filter(_claimable(now), kind="database", request__status__in=OPEN)
        .exclude(request_id=step.request_id)
        .order_by("id")
        .values_list("request_id", flat=True)[: settings.ERASURE_BATCH - 1]
    )
    request_ids = [step.request_id, *others]
    failed = {}
    for kind in ("database", "media", "cache"):
        where = Q(kind=kind, request_id__in=request_ids)
        if kind == "cache":
            where &= Q(
                request_id__in=ErasureStep.objects.filter(
                    kind="database", status=ErasureStatus.VERIFIED, request_id__in=request_ids
                ).values("request_id")
            )
        claimed = _claim(where, limit=len(request_ids), first=step.pk)
        if claimed:
            failed.update(
                _settle(claimed, BATCH_ACTIONS[kind](claimed), own_request=step.request_id)
            )
    _finish(request_ids)
    if len(request_ids) >= settings.ERASURE_BATCH:
        _follow_up(Q(kind="database"))
    _raise_own(step, failed)


def _holder_sweep(step: ErasureStep) -> None:
    """One holder: this subject and up to ERASURE_BATCH - 1 others waiting for that holder."""
    claimed = _claim(
        Q(kind="http", holder_id=step.holder_id, request__status__in=OPEN) | Q(pk=step.pk),
        limit=settings.ERASURE_BATCH,
        first=step.pk,
    )
    failed = (
        _settle(claimed, _erase_http_batch(claimed), own_request=step.request_id) if claimed else {}
    )
    _finish([s.request_id for s in claimed if s not in failed])
    if len(claimed) >= settings.ERASURE_BATCH:
        _follow_up(Q(kind="http", holder_id=step.holder_id))
    _raise_own(step, failed)


def _follow_up(where: Q) -> None:
    """A full batch may have left more waiting: queue a task for the next one, so a backlog
    drains batch after batch without a message per step."""
    from .tasks import erasure_step_task  # noqa: PLC0415 - tasks import this module

    waiting = (
        ErasureStep.objects.filter(_claimable(timezone.now()), where, request__status__in=OPEN)
        .order_by("id")
        .values_list("pk", flat=True)
        .first()
    )
    if waiting:
        transaction.on_commit(lambda: erasure_step_task.delay(waiting))


def _raise_own(step: ErasureStep, failed: dict) -> None:
    """Raise the failure of this task's request (Celery retries the task with backoff)."""
    own = [exc for failed_step, exc in failed.items() if failed_step.request_id == step.request_id]
    if own:
        raise own[0]


def _settle(steps: list[ErasureStep], outcome: tuple[dict, dict], *, own_request) -> dict:
    """Record a batch's outcome: verified steps in a few statements, failures one by one, each
    with a retry queued (the calling task's own request is retried by the task itself).
    Returns {step: exception} for the failures."""
    from .tasks import erasure_step_task  # noqa: PLC0415 - tasks import this module

    done, failed = outcome
    now = timezone.now()
    by_count = defaultdict(list)
    for pk, erased in done.items():
        by_count[erased].append(pk)
    for erased, pks in by_count.items():
        ErasureStep.objects.filter(pk__in=pks).exclude(status=ErasureStatus.VERIFIED).update(
            status=ErasureStatus.VERIFIED,
            items_erased=Greatest(F("items_erased"), Value(erased)),
            verified_at=now,  # updated_at stays the claim's time: verified_at - updated_at = run
            last_error="",
        )
    failures = {}
    for step in steps:
        if step.pk in done:
            step.status = ErasureStatus.VERIFIED
        if step.pk not in failed:
            continue
        failures[step] = failed[step.pk]
        _record_failure(step, failed[step.pk])
        if step.request_id != own_request:
            delay = min(
                settings.ERASURE_RETRY_BACKOFF_MAX,
                settings.ERASURE_RETRY_BACKOFF * 2 ** max(step.attempts - 1, 0),
            )
            transaction.on_commit(
                lambda pk=step.pk, d=delay: erasure_step_task.apply_async(
                    (pk,),
                    countdown=random.uniform(0, d),  # noqa: S311 - jitter, not secrecy
                )
            )
    return failures


def _finish(request_ids) -> None:
    """Destroy the keys of the requests whose other steps are all verified; seal those done."""
    steps = list(ErasureStep.objects.filter(request_id__in=request_ids).select_related("request"))
    by_request = defaultdict(list)
    for step in steps:
        by_request[step.request_id].append(step)
    ready = [
        s.pk
        for s in steps
        if s.kind == "key"
        and s.status != ErasureStatus.VERIFIED
        and _runnable(s, by_request[s.request_id])
    ]
    if ready:
        claimed = _claim(Q(pk__in=ready), limit=len(ready))
        if claimed:
            _settle(claimed, _destroy_keys(claimed), own_request=None)
            verified = {s.pk for s in claimed if s.status == ErasureStatus.VERIFIED}
            for step in steps:
                if step.pk in verified:
                    step.status = ErasureStatus.VERIFIED
    sealable = [
        request_id
        for request_id, its in by_request.items()
        if all(s.status == ErasureStatus.VERIFIED for s in its)
        and its[0].request.status != ErasureStatus.VERIFIED
    ]
    if sealable:
        erasure_seal_many(sealable)


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


# --- actions: each erases a batch, verifies, and returns ({step pk: items}, {step pk: error}) --


def _grouped_counts(model, student_ids) -> Counter:
    rows = (
        model.objects.filter(student_id__in=student_ids)
        .order_by()
        .values("student_id")
        .annotate(n=Count("pk"))
        .values_list("student_id", "n")
    )
    return Counter(dict(rows))


def _erase_database_batch(steps: list[ErasureStep]) -> tuple[dict, dict]:
    """Delete the children's events (in batches), templates and photo rows; verify none is left.

    With no template row left, no match index built from now on can hold a child, and
    identify() answers only for children who still have a template row — so a child's former
    face identifies no one (tests/test_erasure.py checks it with the real face). Rebuilding an
    index here to show it again would cost every erasure a decryption of the whole school.
    """
    from .matching import match_index_bump  # noqa: PLC0415

    student_ids = [s.request.student_id for s in steps if s.request.student_id]
    erased = Counter()
    for model in (RecognitionEvent, FaceTemplate, Photo):
        erased.update(_grouped_counts(model, student_ids))
    while True:  # events in batches, so no transaction holds a long lock
        with transaction.atomic():
            ids = list(
                RecognitionEvent.objects.filter(student_id__in=student_ids).values_list(
                    "pk", flat=True
                )[:EVENT_BATCH]
            )
            if not ids:
                break
            RecognitionEvent.objects.filter(pk__in=ids).delete()
    with transaction.atomic():
        FaceTemplate.objects.filter(student_id__in=student_ids).delete()  # copies go too
        Photo.objects.filter(student_id__in=student_ids).delete()
        for school_id in sorted({s.request.school_id for s in steps}):
            match_index_bump(school_id)
    left = Counter()
    for model in (RecognitionEvent, FaceTemplate, Photo):
        left.update(_grouped_counts(model, student_ids))
    done, failed = {}, {}
    for step in steps:
        student_id = step.request.student_id
        if left[student_id]:
            failed[step.pk] = StepFailed(f"{left[student_id]} rows still present")
        else:
            done[step.pk] = erased[student_id]
    return done, failed


def _erase_media_batch(steps: list[ErasureStep]) -> tuple[dict, dict]:
    done, failed = {}, {}
    for step in steps:
        try:
            erased = subject_files_delete(step.request.subject_id)
            if subject_files(step.request.subject_id):
                raise StepFailed("photo files still present")
        except (StepFailed, OSError) as exc:
            failed[step.pk] = exc
        else:
            done[step.pk] = erased
    return done, failed


def _erase_cache_batch(steps: list[ErasureStep]) -> tuple[dict, dict]:
    """Invalidate every process's match index of the schools concerned. It runs after the
    database step, so an index rebuilt from now on cannot contain the child; checked without
    rebuilding one."""
    from .matching import _current_version, match_cache_forget, match_index_bump  # noqa: PLC0415

    schools = sorted({s.request.school_id for s in steps})
    before = {school_id: _current_version(school_id) for school_id in schools}
    with transaction.atomic():
        for school_id in schools:
            match_index_bump(school_id)  # every process reloads before its next match
    for school_id in schools:
        match_cache_forget(school_id)
    unchanged = {
        school_id for school_id in schools if _current_version(school_id) == before[school_id]
    }
    still_held = set(
        FaceTemplate.objects.filter(
            student_id__in=[s.request.student_id for s in steps]
        ).values_list("student_id", flat=True)
    )
    done, failed = {}, {}
    for step in steps:
        if step.request.school_id in unchanged:
            failed[step.pk] = StepFailed("the match index version did not change")
        elif step.request.student_id in still_held:
            failed[step.pk] = StepFailed("the child's templates are still in the database")
        else:
            done[step.pk] = 0
    return done, failed


def _erase_http_batch(steps: list[ErasureStep]) -> tuple[dict, dict]:
    """DELETE then GET (expect 404) each subject on one holder. A holder that cannot be
    reached fails the rest of the batch at once instead of timing out on every subject."""
    done, failed = {}, {}
    holder = steps[0].holder
    if holder is None:  # the holder was removed from the configuration; nothing to reach
        return {s.pk: 0 for s in steps}, {}
    client = client_for(holder, timeout=settings.HOLDER_TIMEOUT_SECONDS)
    down = None
    for step in steps:
        if down is not None:
            failed[step.pk] = down
            continue
        subject = str(step.request.subject_id)
        try:
            erased = client.delete_subject(subject)
            if client.get_subject(subject) is not None:
                raise StepFailed("the holder still reports data for the subject")
        except HolderUnavailable as exc:
            failed[step.pk] = down = exc
        except (HolderRejected, StepFailed, OSError) as exc:
            failed[step.pk] = exc
        else:
            done[step.pk] = erased
    return done, failed


def _destroy_keys(steps: list[ErasureStep]) -> tuple[dict, dict]:
    student_ids = [s.request.student_id for s in steps]
    destroyed = child_keys_destroy(student_ids)
    readable = child_keys_for_reading(student_ids)
    done, failed = {}, {}
    for step in steps:
        if step.request.student_id in readable:
            failed[step.pk] = StepFailed("the data key can still be read")
        else:
            done[step.pk] = int(step.request.student_id in destroyed)
    return done, failed


BATCH_ACTIONS = {
    "database": _erase_database_batch,
    "media": _erase_media_batch,
    "cache": _erase_cache_batch,
}


# --- sealing ----------------------------------------------------------------------------------


def erasure_seal(*, request_id) -> ErasureRequest:
    """Mark one request verified, sign its receipt, tell the parents (see erasure_seal_many)."""
    erasure_seal_many([request_id])
    return ErasureRequest.objects.get(pk=request_id)


def erasure_seal_many(request_ids) -> int:
    """Mark requests whose steps are all verified as verified, sign their receipts, write
    their audit events, and email the parents after commit. Once only: rows are locked, and
    a request another worker is sealing is skipped (the watchdog seals any left behind).
    Returns how many were sealed now."""
    from .receipts import erasure_receipt_build, erasure_receipt_sign  # noqa: PLC0415

    with transaction.atomic():
        requests = list(
            ErasureRequest.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(pk__in=request_ids)
            .exclude(status=ErasureStatus.VERIFIED)
            .select_related("school")
            .order_by("pk")
        )
        steps = defaultdict(list)
        for step in ErasureStep.objects.filter(request__in=requests).order_by("id"):
            steps[step.request_id].append(step)
        requests = [
            r for r in requests if all(s.status == ErasureStatus.VERIFIED for s in steps[r.pk])
        ]
        if not requests:
            return 0
        now = timezone.now()
        events = []
        for request in requests:
            request.status = ErasureStatus.VERIFIED
            request.completed_at = now
            request.receipt = erasure_receipt_build(request, steps=steps[request.pk])
            request.receipt_signature = erasure_receipt_sign(request.receipt)
            events.append(
                AuditEntry(
                    "erasure.verified",
                    actor=Actor.system("erasure worker"),
                    school_id=request.school_id,
                    subject=request.subject_id,
                    data={
                        "erasure": str(request.pk),
                        "systems": [
                            {"system": s.system, "items": s.items_erased, "at": s.verified_at}
                            for s in steps[request.pk]
                        ],
                    },
                )
            )
        ErasureRequest.objects.bulk_update(
            requests, ["status", "completed_at", "receipt", "receipt_signature"]
        )
        audit_record_many(events)
        transaction.on_commit(lambda: _email_parents(requests))
    return len(requests)


def _email_parents(requests: list[ErasureRequest]) -> None:
    from django.template.loader import render_to_string  # noqa: PLC0415
    from django.urls import reverse  # noqa: PLC0415
    from django.utils import translation  # noqa: PLC0415

    from consent.models import Guardianship  # noqa: PLC0415

    urls = {
        r.student_id: settings.SITE_URL.rstrip("/") + reverse("portal:erasure", args=[r.pk])
        for r in requests
        if r.student_id is not None
    }
    links = Guardianship.objects.filter(student_id__in=urls).select_related("guardian")
    for link in links.order_by("id"):
        guardian = link.guardian
        with translation.override(guardian.language):
            body = render_to_string(
                "portal/email/erasure_done.txt",
                {"guardian": guardian, "url": urls[link.student_id]},
            )
            subject = render_to_string("portal/email/erasure_done_subject.txt").strip()
        send_mail(subject, body, None, [guardian.email])


# --- the watchdog -----------------------------------------------------------------------------


def erasure_watchdog(*, now=None) -> int:
    """Re-drive every step of an open erasure that has not moved for a while, and seal any
    whose steps are all verified. Returns how many tasks were queued plus requests sealed.

    The database, not the broker, says what is left to do: a message lost with a dead worker
    or a restarted Redis is simply sent again.
    """
    now = now or timezone.now()
    stale_before = now - timedelta(seconds=settings.ERASURE_STUCK_SECONDS)
    stuck = ErasureStep.objects.filter(
        request__status__in=OPEN, updated_at__lt=stale_before
    ).exclude(status=ErasureStatus.VERIFIED)
    request_ids = sorted(set(stuck.values_list("request_id", flat=True)))
    # A step left "running" by a dead worker is pending again; every stuck step's clock restarts
    # (at the real time, never at a future `now` a time-travelling job was given).
    ErasureStep.objects.filter(pk__in=stuck.values("pk")).update(
        status=Case(
            When(status=ErasureStatus.RUNNING, then=Value(ErasureStatus.PENDING)),
            default=F("status"),
        ),
        updated_at=min(now, timezone.now()),
    )
    redriven = sum(erasure_dispatch(request_id=request_id) for request_id in request_ids)
    # Every step verified but not sealed (the sealing worker died in between): seal now.
    finished = (
        ErasureRequest.objects.filter(status__in=OPEN, requested_at__lt=stale_before)
        .exclude(steps__status__in=[s for s in ErasureStatus.values if s != ErasureStatus.VERIFIED])
        .values_list("pk", flat=True)
    )
    redriven += erasure_seal_many(list(finished))
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
