"""The school's written notice really going out (PoFA s.26(2)): queued when a guardian is
linked, sent by a worker, counted only once the mail backend accepted it.

A link (by any door: the staff API, the roster, admin, the seed) opens a `NoticeDelivery` and
queues the notice task by name with its id (`consent.jobs.job_enqueue`, after commit). The
task calls `notice_deliveries_send`, which claims the row (compare-and-set), hands the email to
the mail backend and, only when the backend accepted it, records the `Notification` the
consent rule reads through `notification_record` (audited; the child's statuses stored again).
A failure keeps its error and is tried again with backoff; after `MAX_ATTEMPTS` the delivery
is "not reached" (audited) until a campaign sends the notice again (`notice_resend_unreached`).

Delivered twice, a task sends once: the second claim finds the row taken or sent. A worker
killed after the backend accepted the email but before the row was written leaves the row
"sending"; the watchdog hands it out again after `STUCK_AFTER`, so that guardian gets the
notice twice. That is the side we accept: a notice sent twice, never one counted unsent.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.core.mail import get_connection
from django.db import IntegrityError, transaction
from django.db.models import Exists, F, OuterRef, Q, QuerySet
from django.utils import timezone

from ..actors import Actor
from ..audit import audit_record
from ..jobs import job_enqueue
from ..models import (
    Guardianship,
    NoticeDelivery,
    Notification,
    NotificationException,
    NotificationMethod,
)
from ..notice_email import notice_email
from ..texts import guardian_language
from .notifications import notification_record

#: Registered in consent.tasks under these names.
NOTICE_TASK = "consent.tasks.notice_send_task"
NOTICE_WATCHDOG_TASK = "consent.tasks.notice_watchdog_task"

MAX_ATTEMPTS = 6
RETRY_BASE = timedelta(minutes=5)  # 5, 10, 20, 40, 80 minutes: about 2.5 hours in all
RETRY_MAX = timedelta(hours=2)
STUCK_AFTER = timedelta(minutes=10)  # claimed or due this long ago: the watchdog re-queues it
BATCH = 100  # ids per queued message (the roster, campaigns, the watchdog)
NOTICE_ACTOR = Actor.system("notice delivery")

Status = NoticeDelivery.Status
OPEN = list(NoticeDelivery.OPEN)
# Notifications that say the notice reached the guardian (a legacy row says only that the
# guardian was linked, so a campaign sends them the real notice).
REACHED_BY = (NotificationMethod.EMAIL, NotificationMethod.LETTER)


def unreached(links: QuerySet[Guardianship]) -> QuerySet[Guardianship]:
    """The links whose guardian the notice has not reached: no accepted email, no letter, no
    recorded exception (PoFA s.27(1)), and no notice on its way."""
    return (
        links.exclude(
            Exists(Notification.objects.filter(guardianship=OuterRef("pk"), method__in=REACHED_BY))
        )
        .exclude(Exists(NotificationException.objects.filter(guardianship=OuterRef("pk"))))
        .exclude(
            Exists(NoticeDelivery.objects.filter(guardianship=OuterRef("pk"), status__in=OPEN))
        )
    )


def notice_delivery_open(
    *, guardianship: Guardianship, known_new: bool = False, enqueue: bool = True
) -> NoticeDelivery | None:
    """Queue the school's notice to this link's guardian, unless it reached them already or
    one is on its way (then None). Joins the caller's transaction; the task is queued after
    it commits (`enqueue=False`: the caller queues many at once, `notice_deliveries_enqueue`).

    `known_new`: the link was just made, so there is nothing to look up. Not audited here:
    the caller's audit row names the delivery (the link, the campaign)."""
    fields = {"guardianship": guardianship, "next_attempt_at": timezone.now()}
    if known_new:  # nothing can be open for a link made in this transaction
        delivery = NoticeDelivery.objects.create(**fields)
    elif not unreached(Guardianship.objects.filter(pk=guardianship.pk)).exists():
        return None
    else:
        try:
            with transaction.atomic():  # a savepoint: a concurrent open wins, this one joins it
                delivery = NoticeDelivery.objects.create(**fields)
        except IntegrityError:
            return None
    if enqueue:
        job_enqueue(NOTICE_TASK, delivery.pk)
    return delivery


def notice_deliveries_enqueue(delivery_ids: Iterable[int]) -> int:
    """Queue notices in messages of `BATCH` ids (after the caller's transaction commits)."""
    ids = list(delivery_ids)
    for start in range(0, len(ids), BATCH):
        job_enqueue(NOTICE_TASK, *ids[start : start + BATCH])
    return len(ids)


def notice_resend_unreached(*, links: QuerySet[Guardianship]) -> list[NoticeDelivery]:
    """Send the notice again to every guardian of these links it has not reached (a new
    delivery each; those still on their way are left to finish). For campaigns."""
    with transaction.atomic():
        opened = [
            delivery
            for link in unreached(links)
            if (delivery := notice_delivery_open(guardianship=link, enqueue=False)) is not None
        ]
        notice_deliveries_enqueue(d.pk for d in opened)
    return opened


@dataclass
class SendReport:
    sent: list[int] = field(default_factory=list)
    retrying: list[int] = field(default_factory=list)
    not_reached: list[int] = field(default_factory=list)
    skipped: list[int] = field(default_factory=list)  # taken by another run, or done already


def notice_deliveries_send(
    *, delivery_ids: Iterable[int], now: datetime | None = None
) -> SendReport:
    """Send these notices over one connection to the mail backend. For each:

    1. Claim it: `pending` (and due) → `sending`, one more attempt, in one compare-and-set;
       0 rows means another run has it or it is done: skip. A link with an exception recorded
       since (not found, welfare of the child...) is not contacted: `excused`.
    2. Write the email in the guardian's language and hand it to the backend.
    3. Accepted: mark it sent and record the Notification (audited; the child's consent
       statuses stored again), in one transaction.
    4. Refused or raised: keep the error and queue it again after a backoff, or after
       `MAX_ATTEMPTS` give up: "not reached" (audited), until a campaign sends it again.
    """
    report = SendReport()
    connection = get_connection(fail_silently=False)
    try:
        for pk in delivery_ids:
            at = now or timezone.now()
            claimed = NoticeDelivery.objects.filter(
                Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=at + timedelta(seconds=5)),
                pk=pk,
                status=Status.PENDING,
            ).update(status=Status.SENDING, claimed_at=at, attempts=F("attempts") + 1)
            if not claimed:
                report.skipped.append(pk)
                continue
            delivery = NoticeDelivery.objects.select_related(
                "guardianship__guardian", "guardianship__student__school"
            ).get(pk=pk)
            if delivery.guardianship.notification_exceptions.exists():
                # Recorded since it was queued (a parent who must not be contacted): not sent.
                NoticeDelivery.objects.filter(pk=pk).update(status=Status.EXCUSED)
                report.skipped.append(pk)
                continue
            try:
                accepted = connection.send_messages([notice_email(delivery.guardianship)])
                if not accepted:
                    raise RuntimeError("the mail backend accepted nothing")
            except Exception as exc:  # any backend's failure: recorded, retried, shown in admin
                _failed(delivery, exc, at, report)
            else:
                _accepted(delivery, now or timezone.now(), report)
    finally:
        connection.close()
    return report


def _accepted(delivery: NoticeDelivery, at: datetime, report: SendReport) -> None:
    link = delivery.guardianship
    with transaction.atomic():
        won = NoticeDelivery.objects.filter(pk=delivery.pk, sent_at__isnull=True).update(
            status=Status.SENT,
            sent_at=at,
            last_error="",
            next_attempt_at=None,
            language=guardian_language(link.guardian, school=link.student.school),
        )
        if not won:  # unlinked meanwhile (the row went with the link), or recorded already
            report.skipped.append(delivery.pk)
            return
        notification = notification_record(
            guardianship=link,
            sent_at=at,
            method=NotificationMethod.EMAIL,
            note=f"Notice emailed (delivery {delivery.pk}), accepted by the mail server",
            actor=NOTICE_ACTOR,
        )
        NoticeDelivery.objects.filter(pk=delivery.pk).update(notification=notification)
    report.sent.append(delivery.pk)


def retry_delay(attempts: int) -> timedelta:
    """Exponential backoff with ±20% jitter (so a mail server's outage is not met by a wave)."""
    delay = min(RETRY_BASE * 2 ** max(attempts - 1, 0), RETRY_MAX)
    return delay * random.uniform(0.8, 1.2)  # noqa: S311 - jitter, not security


def _failed(delivery: NoticeDelivery, exc: Exception, at: datetime, report: SendReport) -> None:
    error = f"{type(exc).__name__}: {exc}"[:300]
    claimed = NoticeDelivery.objects.filter(pk=delivery.pk, status=Status.SENDING)
    if delivery.attempts >= MAX_ATTEMPTS:
        student = delivery.guardianship.student
        with transaction.atomic():
            if claimed.update(status=Status.FAILED, last_error=error, next_attempt_at=None):
                audit_record(
                    "consent.notice_not_reached",
                    actor=NOTICE_ACTOR,
                    school_id=student.school_id,
                    subject=student.subject_id,
                    # The error's type only: its text may name the address.
                    data={
                        "delivery": delivery.pk,
                        "guardian": delivery.guardianship.guardian_id,
                        "attempts": delivery.attempts,
                        "error": type(exc).__name__,
                    },
                )
        report.not_reached.append(delivery.pk)
        return
    delay = retry_delay(delivery.attempts)
    if claimed.update(status=Status.PENDING, last_error=error, next_attempt_at=at + delay):
        job_enqueue(NOTICE_TASK, delivery.pk, countdown=delay.total_seconds())
    report.retrying.append(delivery.pk)


def notice_watchdog(*, now: datetime | None = None) -> list[int]:
    """Queue again the notices that stopped moving; returns their ids.

    A delivery due for more than `STUCK_AFTER` (its message was lost: a broker restart, a
    commit whose message never left) is queued again; one claimed that long ago (its worker
    died while sending) is put back to `pending` first. The email of the second kind may have
    been accepted already: it is sent again (at least once, never counted unsent).
    """
    now = now or timezone.now()
    stale = now - STUCK_AFTER
    NoticeDelivery.objects.filter(status=Status.SENDING, claimed_at__lt=stale).update(
        status=Status.PENDING, next_attempt_at=now - STUCK_AFTER - timedelta(seconds=1)
    )
    due = list(
        NoticeDelivery.objects.filter(status=Status.PENDING, next_attempt_at__lt=stale)
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    # Not again before another STUCK_AFTER: one message per stuck row per watchdog period.
    NoticeDelivery.objects.filter(pk__in=due, status=Status.PENDING).update(next_attempt_at=now)
    notice_deliveries_enqueue(due)
    return due
