"""Retention: scheduled jobs that keep nothing longer than allowed (docs/erasure.md).

What is due, for whom, is `biometrics.due.erasure_due`'s answer; each job asks it for its own
reasons and does what has come (`dues_enforce`): leavers, template age, the event window, and
everything consent no longer covers. Reconciliation asks it for every subject a holder lists.

Every job takes an "as of" time (for testing and for catching up), can run dry, works in short
batches so no transaction holds locks for long, is idempotent (a killed run resumes where it
stopped; two runs at once do no harm), and writes a summary to RetentionRun and the audit
trail. Beat runs them through `portal.tasks.retention_job_task` (schedules in admin);
`manage.py enforce_retention` runs them together with the portal's own job (expired exports).
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import Count, Exists, OuterRef, Q
from django.utils import timezone

from consent.actors import Actor
from consent.audit import AuditEntry, audit_record, audit_record_many
from consent.mail import email_render
from consent.models import ConsentDecision, Decision, School, Student, StudentStatus
from consent.texts import guardian_language, purpose_words

from .due import CLOCKS, EVENT_WINDOW, EVERYTHING, LEAVER, TEMPLATE_AGE, ChildDue, Due, dues_for
from .erasure import OPEN, erasure_open_many, erasure_watchdog
from .erasure.watchdog import expired_leases, stuck_steps
from .matching import match_index_changes_prune
from .models import (
    ConsentReminder,
    ErasureRequest,
    FaceTemplate,
    Photo,
    RecognitionEvent,
    RetentionRun,
)
from .reconcile import job_reconcile

EVENT_BATCH = 5000
STUDENT_BATCH = 500
REMINDER_DAYS = 30
ACTOR = Actor.system("retention")
Reasons = Callable[[str], bool]


def _open_erasures(
    students: list[Student], trigger: str, dry_run: bool, actor: Actor = ACTOR
) -> int:
    """Open erasures for those of `students` without one open, together (one transaction, one
    task per batch of them). Returns how many were opened (or would be, with dry_run).

    Two runs at once: the children's rows are locked and the check repeated under the lock, so
    each child is opened, and counted, by one run only (the other finds it open)."""

    def without_open(batch):
        already = set(
            ErasureRequest.objects.filter(student__in=batch, status__in=OPEN).values_list(
                "student_id", flat=True
            )
        )
        return [s for s in batch if s.pk not in already]

    # Checked first without a lock, so a batch of children mostly open already locks none;
    # one child (a decision's) is checked only under the lock.
    new = without_open(students) if dry_run or len(students) > 1 else list(students)
    if not new or dry_run:
        return len(new)
    with transaction.atomic(savepoint=False):  # joins the caller's; no savepoint to pay for
        # FOR NO KEY UPDATE: two runs wait for each other, but rows that merely reference the
        # child (an event, a parent's erasure or decision) are not held up.
        locked = set(
            Student.objects.select_for_update(no_key=True)
            .filter(pk__in=[s.pk for s in new])
            .order_by("pk")
            .values_list("pk", flat=True)
        )
        new = without_open([s for s in new if s.pk in locked])
        if not new:
            return 0
        opened = erasure_open_many(students=new, trigger=trigger, actor=actor)
    # A child another trigger (a parent, a withdrawal) opened meanwhile was joined, not opened.
    return sum(1 for request in opened if request.trigger == trigger)


def _students_in_batches(queryset):
    last = None
    while True:
        batch = queryset.order_by("pk")
        if last is not None:
            batch = batch.filter(pk__gt=last)
        batch = list(batch[:STUDENT_BATCH])
        if not batch:
            return
        yield batch
        last = batch[-1].pk


@dataclass
class Enforced:
    """What doing the dues did (or, in a dry run, would do)."""

    erasures_started: int = 0
    events_deleted: int = 0
    longest_transaction_ms: float = 0.0

    def add(self, other: Enforced) -> None:
        self.erasures_started += other.erasures_started
        self.events_deleted += other.events_deleted
        self.longest_transaction_ms = max(self.longest_transaction_ms, other.longest_transaction_ms)


def dues_enforce(
    children: list[ChildDue], *, at: datetime, reasons: Reasons, dry_run: bool, actor: Actor = ACTOR
) -> Enforced:
    """Do what `erasure_due` says has come, for the reasons given (a predicate on the reason).

    1. Everything due: an erasure (triggered by the reason) for each child the portal holds
       data of; its recognition events go with it. (Copies a holder keeps of a child the portal
       holds nothing of are reconciliation's.)
    2. Events due: deleted, the children with the same due together.
    """
    done = Enforced()
    opening: dict[str, list[Student]] = defaultdict(list)
    events: dict[Due, list[Student]] = defaultdict(list)
    for child in children:
        due = child.due_now(at, reasons=reasons)
        everything = next((d for d in due if d.what == EVERYTHING), None)
        if everything is not None:
            if child.held.portal:
                opening[everything.trigger].append(child.student)
            continue
        for d in due:
            # `by` differs from child to child; what is deleted does not.
            events[replace(d, by=at)].append(child.student)
    for what, students in events.items():
        deleted, seconds = events_erase(students, what, at=at, dry_run=dry_run, actor=actor)
        done.add(Enforced(events_deleted=deleted, longest_transaction_ms=seconds * 1000))
    for trigger, students in opening.items():
        done.erasures_started += _open_erasures(students, trigger, dry_run, actor)
    done.longest_transaction_ms = round(done.longest_transaction_ms, 1)
    return done


def events_erase(
    students: list[Student], due: Due, *, at: datetime, dry_run: bool = False, actor: Actor = ACTOR
) -> tuple[int, float]:
    """Delete the recognition events an EVENTS due names, for these children. Returns how many
    and the longest transaction, in seconds.

    A purpose that ended: one transaction, and an audit row per child with its count. The event
    window: EVENT_BATCH events per transaction (however many there are, no transaction holds
    locks for long, and a killed run resumes with no double effect), audited by its job's run.
    """
    events = RecognitionEvent.objects.filter(student__in=[s.pk for s in students])
    if due.purposes:
        events = events.filter(purpose__code__in=due.purposes)
    if due.older_than is not None:  # as old as the window, or older
        events = events.filter(at__lte=at - due.older_than)
    if dry_run:
        return events.count(), 0.0
    if due.reason != EVENT_WINDOW:
        started = time.monotonic()
        with transaction.atomic():
            counts = dict(
                events.values("student_id").annotate(n=Count("pk")).values_list("student_id", "n")
            )
            RecognitionEvent.objects.filter(pk__in=events.values("pk")).delete()
            audit_record_many(
                [
                    AuditEntry(
                        "biometrics.purpose_events_erased",
                        actor=actor,
                        school_id=s.school_id,
                        subject=s.subject_id,
                        data={
                            "purposes": sorted(due.purposes),
                            "events": counts[s.pk],
                            "why": due.reason,
                        },
                    )
                    for s in students
                    if counts.get(s.pk)
                ]
            )
        return sum(counts.values()), time.monotonic() - started
    deleted = 0
    longest = 0.0
    while True:
        started = time.monotonic()
        with transaction.atomic():
            # A subquery, not a list of ids sent back; ordered by `at` so the (at) index bounds
            # each batch.
            n = RecognitionEvent.objects.filter(
                pk__in=events.order_by("at").values("pk")[:EVENT_BATCH]
            ).delete()[0]
        longest = max(longest, time.monotonic() - started)
        deleted += n
        if n < EVENT_BATCH:  # that was the last of them
            return deleted, longest


def _enforce_in_batches(
    students, *, as_of: datetime, reasons: Reasons, dry_run: bool, clocks_only: bool = False
) -> Enforced:
    done = Enforced()
    for batch in _students_in_batches(students):
        children = dues_for(batch, at=as_of, clocks_only=clocks_only)
        done.add(dues_enforce(children, at=as_of, reasons=reasons, dry_run=dry_run))
    return done


def _holding_data(school: School):
    """The school's children the portal still holds biometric data about: a template, a photo
    (one still being processed, say) or recognition events."""
    return Student.objects.filter(school=school).filter(
        Exists(FaceTemplate.objects.filter(student=OuterRef("pk")))
        | Exists(Photo.objects.filter(student=OuterRef("pk")))
        | Exists(RecognitionEvent.objects.filter(student=OuterRef("pk")))
    )


def job_leavers(*, as_of: datetime, dry_run: bool) -> dict:
    """Erase leavers once the school's leaver window (at most 30 days) has passed."""
    erased = 0
    for school in School.objects.all():
        leavers = _holding_data(school).filter(status=StudentStatus.LEAVER)
        done = _enforce_in_batches(leavers, as_of=as_of, reasons=LEAVER.__eq__, dry_run=dry_run)
        erased += done.erasures_started
    return {"erasures_started": erased}


def job_template_age(*, as_of: datetime, dry_run: bool) -> dict:
    """Erase a child's data once the last recognition (or enrolment) is older than the school's
    template maximum age (BIPA: 3 years)."""
    erased = 0
    for school in School.objects.all():
        with_templates = Student.objects.filter(
            school=school, pk__in=FaceTemplate.objects.values("student_id")
        )
        done = _enforce_in_batches(
            with_templates,
            as_of=as_of,
            reasons=TEMPLATE_AGE.__eq__,
            dry_run=dry_run,
            clocks_only=True,
        )
        erased += done.erasures_started
    return {"erasures_started": erased}


def job_recognition_events(*, as_of: datetime, dry_run: bool) -> dict:
    """Delete recognition events older than the school's event window, in short batches; and
    the match index's change log older than a day (it names children whose templates changed)."""
    deleted = 0
    longest = 0.0
    for school in School.objects.all():
        cutoff = as_of - timedelta(days=school.event_window_days)
        with_old = Student.objects.filter(
            school=school,
            pk__in=RecognitionEvent.objects.filter(at__lte=cutoff).values("student_id"),
        )
        done = _enforce_in_batches(
            with_old, as_of=as_of, reasons=EVENT_WINDOW.__eq__, dry_run=dry_run, clocks_only=True
        )
        deleted += done.events_deleted
        longest = max(longest, done.longest_transaction_ms)
    changes = match_index_changes_prune(as_of=as_of, dry_run=dry_run)
    return {
        "events_deleted": deleted,
        "longest_transaction_ms": longest,
        "match_index_changes_deleted": changes,
    }


def _consent_reason(reason: str) -> bool:
    return reason != LEAVER and reason not in CLOCKS


def job_consents(*, as_of: datetime, dry_run: bool) -> dict:
    """Remind guardians 30 days before a grant expires; erase what consent no longer covers
    (an expired grant, a new notice's window passed, a purpose disabled: `erasure_due`)."""
    reminded = erased = events = 0
    for school in School.objects.all():
        validity = timedelta(days=school.consent_validity_days)
        soon = as_of - validity + timedelta(days=REMINDER_DAYS)
        # Only a guardian's latest word on a purpose: a grant since withdrawn, or renewed by a
        # newer grant, does not end on the date a reminder would give.
        superseded = ConsentDecision.objects.filter(
            Q(at__gt=OuterRef("at")) | Q(at=OuterRef("at"), pk__gt=OuterRef("pk")),
            student=OuterRef("student"),
            purpose=OuterRef("purpose"),
            guardian=OuterRef("guardian"),
            at__lte=as_of,
        )
        due = (
            ConsentDecision.objects.filter(
                student__school=school,
                decision=Decision.GRANT,
                guardian__isnull=False,
                at__lte=soon,
                at__gt=as_of - validity,
            )
            .exclude(Exists(superseded))
            .exclude(pk__in=ConsentReminder.objects.values("decision_id"))
        )
        for decision in due.select_related("guardian", "purpose", "student").iterator():
            if not dry_run:
                _remind(decision, expires=decision.at + validity)
            reminded += 1
        done = _enforce_in_batches(
            _holding_data(school), as_of=as_of, reasons=_consent_reason, dry_run=dry_run
        )
        erased += done.erasures_started
        events += done.events_deleted
    return {"reminders_sent": reminded, "erasures_started": erased, "purpose_events_erased": events}


def _remind(decision: ConsentDecision, *, expires: datetime) -> None:
    """Email the guardian once per grant. The reminder row commits only after the email went
    out: a job killed in between sends it on its next run (at worst twice, never not at all);
    a second copy of the job waits on the row and then finds it."""
    with transaction.atomic():
        _, created = ConsentReminder.objects.get_or_create(
            decision_id=decision.pk, defaults={"sent_at": timezone.now()}
        )
        if created:
            _remind_send(decision, expires=expires)


def _remind_send(decision: ConsentDecision, *, expires: datetime) -> None:
    purpose, guardian = decision.purpose, decision.guardian
    if purpose is None or guardian is None:
        raise ValueError("a reminder is for one guardian's grant of one purpose")
    language = guardian_language(guardian, school=decision.student.school)
    subject, body = email_render(
        "biometrics/email/consent_reminder",
        {
            "guardian": guardian,
            "purpose": purpose_words(purpose, language),
            "expires": expires,
            "url": settings.SITE_URL,
        },
        language=language,
    )
    send_mail(subject, body, None, [guardian.email])


def job_erasure_watchdog(*, as_of: datetime, dry_run: bool) -> dict:
    """Re-drive erasure steps that stopped moving. Both runs count the stuck steps and expired
    leases (so a dry run says what the real one would pick up); the real run also reports
    what it re-drove."""
    return {
        "steps_stuck": stuck_steps(as_of).count(),
        "leases_expired": expired_leases(as_of).count(),
        "steps_redriven": 0 if dry_run else erasure_watchdog(now=as_of),
    }


Job = Callable[..., dict]

JOBS: dict[str, Job] = {
    "leavers": job_leavers,
    "template_age": job_template_age,
    "recognition_events": job_recognition_events,
    "consents": job_consents,
    "erasure_watchdog": job_erasure_watchdog,
    "reconcile": job_reconcile,
}


def retention_run(
    job: str,
    *,
    as_of: datetime | None = None,
    dry_run: bool = False,
    jobs: Mapping[str, Job] = JOBS,
) -> RetentionRun:
    """Run one job (by its name in `jobs`) and record what it did (RetentionRun + audit)."""
    as_of = as_of or timezone.now()
    run = RetentionRun.objects.create(
        job=job, as_of=as_of, dry_run=dry_run, started_at=timezone.now()
    )
    started = time.monotonic()
    counts = jobs[job](as_of=as_of, dry_run=dry_run)
    counts["seconds"] = round(time.monotonic() - started, 3)
    RetentionRun.objects.filter(pk=run.pk).update(finished_at=timezone.now(), counts=counts)
    audit_record(
        f"retention.{job}",
        actor=ACTOR,
        data={"as_of": as_of.isoformat(), "dry_run": dry_run, **counts},
    )
    run.refresh_from_db()
    return run
