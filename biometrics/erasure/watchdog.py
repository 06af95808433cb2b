"""The erasure watchdog: the database, not the broker, says what is left to do."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Case, F, Value, When
from django.utils import timezone

from consent.actors import Actor
from consent.audit import audit_record

from ..models import OPEN, ErasureRequest, ErasureStatus, ErasureStep
from .opening import erasure_dispatch
from .sealing import erasure_seal_many


def erasure_watchdog(*, now: datetime | None = None) -> int:
    """Re-drive every step of an open erasure that has not moved for a while, and seal any
    whose steps are all verified. Returns how many tasks were queued plus requests sealed.

    A message lost with a dead worker or a restarted Redis is simply sent again.
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
