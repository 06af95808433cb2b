"""Failing steps: how long until the next try, what is recorded, and when a person is told.

A step's next try waits `retry_delay(attempts)`: ERASURE_RETRY_BACKOFF × 2^(attempts−1) seconds,
at most ERASURE_RETRY_BACKOFF_MAX, with jitter — computed from the step's own row, whichever
task picks it up. A step failing for ERASURE_ATTENTION_AFTER seconds (at once for a holder that
was disabled or removed: no retry will bring it back by itself) needs attention: its request is
marked, an audit event written, and the school's DPO emailed — once per step, one email per
school for all the steps that escalate together. Retries go on.
"""

from __future__ import annotations

import logging
import random
from collections import defaultdict
from datetime import datetime, timedelta

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import Q

from consent.actors import Actor
from consent.audit import AuditEntry, audit_record_many

from ..holders.protocol import HolderError
from ..models import OPEN, ErasureRequest, ErasureStatus, ErasureStep

log = logging.getLogger("biometrics.erasure")

ACTOR = Actor.system("erasure worker")


def retry_delay(attempts: int) -> float:
    """Seconds before the next try after `attempts` tries have failed: exponential, capped,
    with "equal jitter" (between half and all of it), so retries never bunch up."""
    base = float(settings.ERASURE_RETRY_BACKOFF)
    ceiling = float(settings.ERASURE_RETRY_BACKOFF_MAX)
    delay = min(ceiling, base * 2 ** min(max(attempts - 1, 0), 40))
    return delay * random.uniform(0.5, 1.0)  # noqa: S311 - jitter, not secrecy


def describe(exc: BaseException) -> str:
    """A failure in words that name no subject or template (they go on each step's row, in
    logs and in the DPO's email; one holder outage fails many children's steps at once)."""
    if isinstance(exc, HolderError):
        return exc.describe()
    if isinstance(exc, OSError):
        return f"{type(exc).__name__}: {exc.strerror or 'I/O error'}"[:300]
    return f"{type(exc).__name__}: {exc}"[:300]


def _due(now: datetime) -> Q:
    """Unverified steps of open erasures that should escalate now and have not."""
    waited = now - timedelta(seconds=settings.ERASURE_ATTENTION_AFTER)
    return (
        Q(request__status__in=OPEN, escalated_at__isnull=True)
        & ~Q(status=ErasureStatus.VERIFIED)
        & (
            Q(failing_since__lte=waited)
            | Q(failing_since__isnull=False, kind="http", holder__enabled=False)
            | Q(kind="http", holder__isnull=True)
        )
    )


def escalate_due(*, now: datetime) -> int:
    """Escalate every step due: needs attention, audited, the DPO emailed after commit. The
    other failing steps of the same system and school escalate with it (one outage, one
    email). Once per step: the steps are claimed under a lock, and a step another process is
    escalating is skipped. Returns how many escalated now."""
    with transaction.atomic():
        due = list(
            ErasureStep.objects.filter(_due(now))
            .values_list("request__school_id", "system")
            .distinct()
        )
        if not due:
            return 0
        together = Q()
        for school_id, system in due:
            together |= Q(request__school_id=school_id, system=system)
        steps = list(
            ErasureStep.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(
                together,
                request__status__in=OPEN,
                escalated_at__isnull=True,
            )
            .filter(Q(failing_since__isnull=False) | Q(kind="http", holder__isnull=True))
            .exclude(status=ErasureStatus.VERIFIED)
            .select_related("request__school", "holder")
            .order_by("id")
        )
        if not steps:
            return 0
        ErasureStep.objects.filter(pk__in=[s.pk for s in steps]).update(
            escalated_at=now, status=ErasureStatus.NEEDS_ATTENTION
        )
        ErasureRequest.objects.filter(pk__in={s.request_id for s in steps}).exclude(
            status=ErasureStatus.VERIFIED
        ).update(status=ErasureStatus.NEEDS_ATTENTION)
        audit_record_many(
            [
                AuditEntry(
                    "erasure.needs_attention",
                    actor=ACTOR,
                    school_id=s.request.school_id,
                    subject=s.request.subject_id,
                    data={
                        "erasure": str(s.request_id),
                        "system": s.system,
                        "attempts": s.attempts,
                        "reason": _reason(s),
                    },
                )
                for s in steps
            ]
        )
        transaction.on_commit(lambda: _email_dpos(steps))
    for step in steps:
        log.warning("erasure step %s (%s) needs attention: %s", step.pk, step.system, _reason(step))
    return len(steps)


def _reason(step: ErasureStep) -> str:
    if step.kind == "http" and step.holder_id is None:
        return "the holder was removed from the configuration while it may hold copies"
    if step.kind == "http" and step.holder is not None and not step.holder.enabled:
        return f"the holder is disabled; last error: {step.last_error}"
    return f"failing since {step.failing_since:%Y-%m-%d %H:%M} UTC; last error: {step.last_error}"


def _email_dpos(steps: list[ErasureStep]) -> None:
    """One email per school for the steps that escalated together."""
    by_school = defaultdict(list)
    for step in steps:
        by_school[step.request.school].append(step)
    for school, its in by_school.items():
        if not school.dpo_email:
            continue
        lines = "\n".join(
            f"- erasure {s.request_id}: {s.system}, {s.attempts} attempts; {_reason(s)}"
            for s in its
        )
        send_mail(
            f"Guardian: {len(its)} erasure step(s) need attention",
            (
                f"These erasure steps have not succeeded:\n\n{lines}\n\nGuardian keeps "
                f"retrying. Check the systems named, then open the erasure in admin and use "
                f"'Retry now'. A holder that was removed or disabled can no longer be asked: "
                f"restore it, or record your confirmation that it holds nothing of the child "
                f"('Record a DPO's confirmation')."
            ),
            None,
            [school.dpo_email],
        )
