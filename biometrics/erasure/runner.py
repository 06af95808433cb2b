"""Running erasure steps, in batches.

A task carries one step id, but does the work of every step of that kind that is due, up to
ERASURE_BATCH: a thousand erasures opened at once cost a few statements per batch, not a few
per child. Steps are claimed with SELECT ... FOR UPDATE SKIP LOCKED (another worker's batch is
left to it) and held on a lease the worker renews while it works; a step whose lease ran out
(its worker died) is claimable again. A step that failed waits until its `next_attempt_at`
(backing off with its own attempts), and one task is queued for that moment per holder, or for
the portal's stores: nothing else runs it early. Each step's outcome is recorded on its own row.
"""

from __future__ import annotations

import logging
import uuid
from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Case, F, Q, Value, When
from django.db.models.functions import Coalesce, Greatest
from django.utils import timezone

from consent.jobs import job_enqueue

from ..models import OPEN, ErasureRequest, ErasureStatus, ErasureStep
from .actions import Outcome, action_for, destroy_keys, erase_http_batch
from .attention import describe, escalate_due, retry_delay
from .lease import heartbeat, lease_end
from .plan import STEP_TASK, local_kinds, runnable
from .sealing import erasure_seal_many
from .stores import erasure_stores

log = logging.getLogger("biometrics.erasure")


def erasure_step_run(*, step_id: int) -> ErasureStep:
    """Run a step (and the due steps of its kind), then whatever that unlocks.

    Idempotent and safe to deliver twice: a verified step only finishes its request (destroy
    the key when everything else is verified, seal), so a task delivered again after its own
    step still completes the chain. A step another worker holds (its lease runs), or one not
    due yet (backing off), is left alone. Failures are recorded on their rows and retried at
    their time; the task itself does not fail.
    """
    step = ErasureStep.objects.select_related("request", "holder").get(pk=step_id)
    now = timezone.now()
    if step.status == ErasureStatus.RUNNING and step.lease_until and step.lease_until >= now:
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
    """Not verified; not held by a live lease; due; and reachable (a holder step whose holder
    was removed waits for a DPO, not for a worker)."""
    return (
        ~Q(status=ErasureStatus.VERIFIED)
        & (~Q(status=ErasureStatus.RUNNING) | Q(lease_until__isnull=True) | Q(lease_until__lt=now))
        & (Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
        & ~Q(kind="http", holder__isnull=True)
    )


def _claim(where: Q, *, limit: int, first: int | None = None) -> list[ErasureStep]:
    """Claim up to `limit` claimable steps matching `where` (`first` ahead of the others):
    mark them running on a lease and count the attempt. Returns the steps this caller holds."""
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
            status=ErasureStatus.RUNNING,
            attempts=F("attempts") + 1,
            updated_at=now,
            lease_until=lease_end(now),
        )
    steps = list(
        ErasureStep.objects.filter(pk__in=ids).select_related("request", "holder").order_by("id")
    )
    starting = {s.request_id for s in steps if s.request.status == ErasureStatus.PENDING}
    if starting:
        with transaction.atomic():
            # Never waits on a request row another worker holds (sealing it, or starting it
            # too): that one is left pending for now, and the next claim or the seal moves it.
            free = list(
                ErasureRequest.objects.select_for_update(skip_locked=True, of=("self",))
                .filter(pk__in=starting, status=ErasureStatus.PENDING)
                .values_list("pk", flat=True)
            )
            if free:
                ErasureRequest.objects.filter(pk__in=free).update(status=ErasureStatus.RUNNING)
    return steps


def _run(steps: list[ErasureStep], action) -> dict[ErasureStep, Exception]:
    """Run an action on claimed steps under their lease; record what came of it."""
    with heartbeat([s.pk for s in steps]):
        try:
            outcome = action(steps)
        except Exception as exc:  # an unexpected failure is still a failure of these steps
            log.exception("erasure action for %d %s steps failed", len(steps), steps[0].kind)
            outcome = Outcome(failed={s.pk: exc for s in steps})
    return _settle(steps, outcome)


def _portal_sweep(step: ErasureStep) -> None:
    """The portal's own stores for this request and up to ERASURE_BATCH - 1 others due:
    database rows, then photo files, then the match cache (which waits for the rows), then the
    stores registered by the apps above (downloads)."""
    now = timezone.now()
    kinds = sorted(local_kinds() - {"key"})
    waiting = (
        ErasureStep.objects.filter(_claimable(now), kind__in=kinds, request__status__in=OPEN)
        .exclude(request_id=step.request_id)
        .order_by("id")
        .values_list("request_id", flat=True)[: settings.ERASURE_BATCH * len(kinds)]
    )
    others = list(dict.fromkeys(waiting))[: settings.ERASURE_BATCH - 1]
    request_ids = [step.request_id, *others]
    stores = [store.system.kind for store in erasure_stores()]
    for kind in ("database", "media", "cache", *stores):
        where = Q(kind=kind, request_id__in=request_ids)
        if kind == "cache":
            where &= Q(
                request_id__in=ErasureStep.objects.filter(
                    kind="database", status=ErasureStatus.VERIFIED, request_id__in=request_ids
                ).values("request_id")
            )
        claimed = _claim(where, limit=len(request_ids), first=step.pk)
        if claimed:
            _run(claimed, action_for(kind))
    _finish(request_ids)
    if len(request_ids) >= settings.ERASURE_BATCH:
        _follow_up(Q(kind="database"))


def _holder_sweep(step: ErasureStep) -> None:
    """One holder: this subject and up to ERASURE_BATCH - 1 others due for that holder."""
    claimed = _claim(
        Q(kind="http", holder_id=step.holder_id, request__status__in=OPEN) | Q(pk=step.pk),
        limit=settings.ERASURE_BATCH,
        first=step.pk,
    )
    failed = _run(claimed, erase_http_batch) if claimed else {}
    _finish([s.request_id for s in claimed if s not in failed])
    if len(claimed) >= settings.ERASURE_BATCH:
        _follow_up(Q(kind="http", holder_id=step.holder_id))


def _follow_up(where: Q) -> None:
    """A full batch may have left more due: queue a task for the next one, so a backlog
    drains batch after batch without a message per step."""
    waiting = (
        ErasureStep.objects.filter(_claimable(timezone.now()), where, request__status__in=OPEN)
        .order_by("id")
        .values_list("pk", flat=True)
        .first()
    )
    if waiting:
        job_enqueue(STEP_TASK, waiting)


def _settle(steps: list[ErasureStep], outcome: Outcome) -> dict[ErasureStep, Exception]:
    """Record a batch's outcome: verified steps in a few statements (with what their
    verification measured), failures one by one with their next try (backing off), then
    escalate those failing too long and queue one retry per holder / for the portal at the
    earliest next try. Returns {step: exception} for the failures."""
    now = timezone.now()
    by_count = defaultdict(list)
    for pk, erased in outcome.done.items():
        by_count[erased].append(pk)
    for erased, pks in by_count.items():
        ErasureStep.objects.filter(pk__in=pks).exclude(status=ErasureStatus.VERIFIED).update(
            status=ErasureStatus.VERIFIED,
            items_erased=Greatest(F("items_erased"), Value(erased)),
            verified_at=now,  # updated_at stays the claim's time: verified_at - updated_at = run
            last_error="",
            lease_until=None,
            next_attempt_at=None,
        )
    proven = [s for s in steps if s.pk in outcome.proof]
    for step in proven:
        step.proof = {**step.proof, **outcome.proof[step.pk]}
    if proven:
        ErasureStep.objects.bulk_update(proven, ["proof"])
    failures: dict[ErasureStep, Exception] = {}
    for step in steps:
        if step.pk in outcome.done:
            step.status = ErasureStatus.VERIFIED
        elif step.pk in outcome.failed:
            failures[step] = outcome.failed[step.pk]
            _record_failure(step, outcome.failed[step.pk], now)
    if failures:
        escalate_due(now=now)
        _schedule_retries(list(failures))
    return failures


def _record_failure(step: ErasureStep, exc: Exception, now: datetime) -> None:
    """The attempt failed: say why (naming no subject), and when the next one may run."""
    message = describe(exc)
    step.next_attempt_at = now + timedelta(seconds=retry_delay(step.attempts))
    ErasureStep.objects.filter(pk=step.pk).exclude(status=ErasureStatus.VERIFIED).update(
        # Pending again (its retry, or the watchdog, runs it); still needs attention once it did.
        status=Case(
            When(escalated_at__isnull=False, then=Value(ErasureStatus.NEEDS_ATTENTION)),
            default=Value(ErasureStatus.PENDING),
        ),
        last_error=message,
        lease_until=None,
        next_attempt_at=step.next_attempt_at,
        failing_since=Coalesce(F("failing_since"), Value(now)),
        updated_at=now,
    )
    log.warning("erasure step %s (%s) failed: %s", step.pk, step.system, message)


def _schedule_retries(failed: list[ErasureStep]) -> None:
    """One task per holder, and one for the portal's stores, at the earliest next try: the
    task works every step of its kind that is due by then (one message, not one per step)."""
    groups: dict[tuple, list[ErasureStep]] = defaultdict(list)
    for step in failed:
        if step.kind == "http":
            groups[("http", step.holder_id)].append(step)
        elif step.kind == "key":
            groups[("key", step.request_id)].append(step)
        else:
            groups[("portal",)].append(step)
    now = timezone.now()
    for its in groups.values():
        first = min(its, key=lambda s: s.next_attempt_at or now)
        wait = ((first.next_attempt_at or now) - now).total_seconds()
        job_enqueue(STEP_TASK, first.pk, countdown=max(wait, 0) + 0.05)


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
            _run(claimed, destroy_keys)
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
