"""The erasure watchdog: the database, not the broker, says what is left to do.

Run every 30 seconds by beat. It takes back the steps of workers whose lease ran out (they
died) and re-drives them at once, re-drives steps that have been due for ERASURE_STUCK_SECONDS
with no worker on them (a lost message; a backlog still queued is not stuck), escalates steps
failing for too long, re-sends template copies that have not arrived, and seals erasures whose
steps are all verified. It queues one task per batch of steps, not one per step.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Case, Q, QuerySet, Value, When
from django.utils import timezone

from consent.actors import Actor
from consent.audit import audit_record
from consent.jobs import job_enqueue

from ..models import OPEN, ErasureRequest, ErasureStatus, ErasureStep, TemplateCopy
from .attention import escalate_due
from .plan import COPY_TASK, STEP_TASK, runnable
from .sealing import erasure_seal_many

#: Template copies re-sent per run at most (the rest wait for the next run).
COPY_BATCH = 500


def stuck_steps(now: datetime) -> QuerySet[ErasureStep]:
    """Steps of open erasures that have been due for ERASURE_STUCK_SECONDS with no worker
    holding them, and have not moved meanwhile: their task was lost (or never sent)."""
    since = now - timedelta(seconds=settings.ERASURE_STUCK_SECONDS)
    return (
        ErasureStep.objects.filter(request__status__in=OPEN, updated_at__lt=since)
        .exclude(status__in=[ErasureStatus.VERIFIED, ErasureStatus.RUNNING])
        .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=since))
        .exclude(kind="http", holder__isnull=True)  # waits for a DPO, not for a worker
    )


def expired_leases(now: datetime) -> QuerySet[ErasureStep]:
    """Steps of open erasures marked running whose worker stopped renewing its lease."""
    return ErasureStep.objects.filter(
        Q(lease_until__isnull=True) | Q(lease_until__lt=now),
        request__status__in=OPEN,
        status=ErasureStatus.RUNNING,
    )


def copies_due(now: datetime) -> QuerySet[TemplateCopy]:
    """Template copies not stored, due for ERASURE_STUCK_SECONDS, to a holder that still
    receives templates, of a child with no erasure open (an erasure supersedes them)."""
    since = now - timedelta(seconds=settings.ERASURE_STUCK_SECONDS)
    return TemplateCopy.objects.filter(
        status__in=[TemplateCopy.Status.PENDING, TemplateCopy.Status.FAILED],
        next_attempt_at__lte=since,
        holder__enabled=True,
        holder__receives_templates=True,
    ).exclude(template__student__erasures__status__in=OPEN)


def erasure_watchdog(*, now: datetime | None = None) -> int:
    """Re-drive what stopped moving; returns how many tasks were queued (steps and template
    copies) plus requests sealed. A message lost with a dead worker or a restarted Redis is
    simply sent again."""
    now = now or timezone.now()
    stamp = min(now, timezone.now())  # never a future `now` a time-travelling job was given
    # 1. Leases that ran out: the worker died. Its steps go back and are re-driven now.
    expired = expired_leases(now)
    reclaimed_requests = set(expired.values_list("request_id", flat=True))
    reclaimed = expired.update(
        status=Case(
            When(escalated_at__isnull=False, then=Value(ErasureStatus.NEEDS_ATTENTION)),
            default=Value(ErasureStatus.PENDING),
        ),
        lease_until=None,
    )
    # 2. Due steps nobody picked up: restart their clock (the next run leaves them to the tasks
    # queued now), and queue their work.
    stuck = stuck_steps(now)
    request_ids = reclaimed_requests | set(stuck.values_list("request_id", flat=True))
    ErasureStep.objects.filter(pk__in=stuck.values("pk")).update(updated_at=stamp)
    redriven = _redispatch(request_ids, now)
    # 3. Steps failing too long, or reaching a holder that was disabled or removed.
    escalated = escalate_due(now=now)
    # 4. Template copies that have not arrived.
    copies = list(copies_due(now).order_by("next_attempt_at").values_list("pk", flat=True))
    copies = copies[:COPY_BATCH]
    TemplateCopy.objects.filter(pk__in=copies).update(
        next_attempt_at=stamp + timedelta(seconds=settings.ERASURE_STUCK_SECONDS)
    )
    for pk in copies:
        job_enqueue(COPY_TASK, pk)
    # 5. Every step verified but not sealed (the sealing worker died in between): seal now.
    since = now - timedelta(seconds=settings.ERASURE_STUCK_SECONDS)
    finished = (
        ErasureRequest.objects.filter(status__in=OPEN, requested_at__lt=since)
        .exclude(steps__status__in=[s for s in ErasureStatus.values if s != ErasureStatus.VERIFIED])
        .values_list("pk", flat=True)
    )
    sealed = erasure_seal_many(list(finished))
    if redriven or reclaimed or escalated or copies or sealed:
        audit_record(
            "erasure.watchdog_redrove",
            actor=Actor.system("erasure watchdog"),
            data={
                "steps": redriven,
                "leases_expired": reclaimed,
                "escalated": escalated,
                "copies": len(copies),
                "sealed": sealed,
            },
        )
    return redriven + len(copies) + sealed


def _redispatch(request_ids: set, now: datetime) -> int:
    """Queue the work these requests can do now, one task per ERASURE_BATCH of them for the
    portal's stores and per holder (each task works its whole batch), one per key step.
    Steps backing off and holder steps awaiting a DPO are left. Returns tasks queued."""
    steps = list(ErasureStep.objects.filter(request_id__in=request_ids).order_by("id"))
    by_request = defaultdict(list)
    for step in steps:
        by_request[step.request_id].append(step)
    groups: dict[tuple, list[int]] = defaultdict(list)
    chosen: set[tuple] = set()
    for step in steps:
        due = step.next_attempt_at is None or step.next_attempt_at <= now
        if (
            step.status == ErasureStatus.VERIFIED
            or not due
            or (step.kind == "http" and step.holder_id is None)
            or not runnable(step, by_request[step.request_id])
        ):
            continue
        if step.kind == "http":
            group: tuple = ("http", step.holder_id)
        elif step.kind == "key":
            group = ("key", step.request_id)
        else:
            group = ("portal",)
            if ("portal", step.request_id) in chosen:
                continue  # one portal step per request: its task runs the rest in turn
            chosen.add(("portal", step.request_id))
        groups[group].append(step.pk)
    queued = 0
    for pks in groups.values():
        for first in pks[:: settings.ERASURE_BATCH]:
            job_enqueue(STEP_TASK, first)
            queued += 1
    return queued
