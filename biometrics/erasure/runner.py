"""Running erasure steps, in batches.

A task carries one step id, but does the work of every step of that kind that is waiting, up
to ERASURE_BATCH: a thousand erasures opened at once cost a few statements per batch, not a
few per child. Steps are claimed with SELECT ... FOR UPDATE SKIP LOCKED (another worker's
batch is left to it); a claimed step that stops moving is claimable again after
ERASURE_STUCK_SECONDS. Each step's outcome is recorded on its own row.
"""

from __future__ import annotations

import logging
import random
import uuid
from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime, timedelta

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import Case, F, Q, Value, When
from django.db.models.functions import Greatest
from django.utils import timezone

from consent.actors import Actor
from consent.audit import audit_record
from consent.jobs import job_enqueue

from ..models import OPEN, ErasureRequest, ErasureStatus, ErasureStep
from .actions import BATCH_ACTIONS, Outcome, destroy_keys, erase_http_batch
from .plan import STEP_TASK, runnable
from .sealing import erasure_seal_many

log = logging.getLogger("biometrics.erasure")


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
    if step.status == ErasureStatus.VERIFIED or step.kind == "key":
        _finish([step.request_id])
    elif step.kind == "http":
        _holder_sweep(step)
    else:
        _portal_sweep(step)
    step.refresh_from_db()
    return step


def _claimable(now: datetime) -> Q:
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
    failed: dict[ErasureStep, Exception] = {}
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
        _settle(claimed, erase_http_batch(claimed), own_request=step.request_id) if claimed else {}
    )
    _finish([s.request_id for s in claimed if s not in failed])
    if len(claimed) >= settings.ERASURE_BATCH:
        _follow_up(Q(kind="http", holder_id=step.holder_id))
    _raise_own(step, failed)


def _follow_up(where: Q) -> None:
    """A full batch may have left more waiting: queue a task for the next one, so a backlog
    drains batch after batch without a message per step."""
    waiting = (
        ErasureStep.objects.filter(_claimable(timezone.now()), where, request__status__in=OPEN)
        .order_by("id")
        .values_list("pk", flat=True)
        .first()
    )
    if waiting:
        job_enqueue(STEP_TASK, waiting)


def _raise_own(step: ErasureStep, failed: dict[ErasureStep, Exception]) -> None:
    """Raise the failure of this task's request (Celery retries the task with backoff)."""
    own = [exc for failed_step, exc in failed.items() if failed_step.request_id == step.request_id]
    if own:
        raise own[0]


def _settle(
    steps: list[ErasureStep], outcome: Outcome, *, own_request: uuid.UUID | None
) -> dict[ErasureStep, Exception]:
    """Record a batch's outcome: verified steps in a few statements, failures one by one, each
    with a retry queued (the calling task's own request is retried by the task itself).
    Returns {step: exception} for the failures."""
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
            jitter = random.uniform(0, delay)  # noqa: S311 - jitter, not secrecy
            job_enqueue(STEP_TASK, step.pk, countdown=jitter)
    return failures


def _finish(request_ids: Iterable[uuid.UUID]) -> None:
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
        and runnable(s, by_request[s.request_id])
    ]
    if ready:
        claimed = _claim(Q(pk__in=ready), limit=len(ready))
        if claimed:
            _settle(claimed, destroy_keys(claimed), own_request=None)
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
