"""The erasure watchdog: the database, not the broker, says what is left to do.

Run every 30 seconds by beat. It takes back the steps of workers whose lease ran out (they
died), re-drives steps that have been due for ERASURE_STUCK_SECONDS with no worker on them (a
lost message), escalates steps failing for too long, re-sends template copies that have not
arrived, and seals erasures whose steps are all verified.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Case, Q, QuerySet, Value, When
from django.utils import timezone

from consent.actors import Actor
from consent.audit import audit_record
from consent.jobs import job_enqueue

from ..models import OPEN, ErasureRequest, ErasureStatus, ErasureStep, TemplateCopy
from .attention import escalate_due
from .opening import erasure_dispatch
from .plan import COPY_TASK
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
    # 1. Leases that ran out: the worker died. The step may be taken again at once.
    reclaimed = expired_leases(now).update(
        status=Case(
            When(escalated_at__isnull=False, then=Value(ErasureStatus.NEEDS_ATTENTION)),
            default=Value(ErasureStatus.PENDING),
        ),
        lease_until=None,
    )
    # 2. Due steps nobody picked up: queue what their requests can do now, and restart their
    # clock so the next run leaves them to the tasks just queued.
    stuck = stuck_steps(now)
    request_ids = sorted(set(stuck.values_list("request_id", flat=True)))
    ErasureStep.objects.filter(pk__in=stuck.values("pk")).update(updated_at=stamp)
    redriven = sum(erasure_dispatch(request_id=request_id) for request_id in request_ids)
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
