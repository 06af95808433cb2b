"""Retention: scheduled jobs that keep nothing longer than allowed (docs/retention.md).

Every job takes an "as of" time (for testing and for catching up), can run dry, works in short
batches so no transaction holds locks for long, is idempotent (a killed run resumes where it
stopped; two runs at once do no harm), and writes a summary to RetentionRun and the audit
trail. Beat runs them through `retention_job_task` (schedules editable in admin);
`manage.py enforce_retention` runs them together with the portal's own job (expired exports).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import Exists, Max, OuterRef, Q
from django.utils import timezone

from consent.actors import Actor
from consent.audit import audit_record
from consent.models import ConsentDecision, Decision, School, Student, StudentStatus
from consent.rules import load_for_rule, purpose_statuses

from .erasure import OPEN, erasure_open, erasure_open_many, erasure_watchdog
from .erasure.watchdog import expired_leases, stuck_steps
from .holders.protocol import HolderError
from .models import (
    ConsentReminder,
    ErasureRequest,
    FaceTemplate,
    Holder,
    Photo,
    RecognitionEvent,
    RetentionRun,
)

EVENT_BATCH = 5000
STUDENT_BATCH = 500
REMINDER_DAYS = 30
ACTOR = Actor.system("retention")


def _has_data(student_ids) -> set:
    """Which of these students still have biometric data in the portal."""
    held = set(
        FaceTemplate.objects.filter(student_id__in=student_ids).values_list("student_id", flat=True)
    )
    held |= set(
        Photo.objects.filter(student_id__in=student_ids).values_list("student_id", flat=True)
    )
    held |= set(
        RecognitionEvent.objects.filter(student_id__in=student_ids)
        .values_list("student_id", flat=True)
        .distinct()
    )
    return held


def _open_erasures(students: list[Student], trigger: str, dry_run: bool) -> int:
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

    new = without_open(students)
    if not new or dry_run:
        return len(new)
    with transaction.atomic():
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
        opened = erasure_open_many(students=new, trigger=trigger, actor=ACTOR)
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


def job_leavers(*, as_of: datetime, dry_run: bool) -> dict:
    """Erase leavers once the school's leaver window (at most 30 days) has passed."""
    erased = 0
    for school in School.objects.all():
        cutoff = as_of - timedelta(days=school.leaver_window_days)
        leavers = Student.objects.filter(
            school=school, status=StudentStatus.LEAVER, left_on__lte=cutoff
        )
        for batch in _students_in_batches(leavers):
            held = _has_data([s.pk for s in batch])
            erased += _open_erasures([s for s in batch if s.pk in held], "leaver", dry_run)
    return {"erasures_started": erased}


def job_template_age(*, as_of: datetime, dry_run: bool) -> dict:
    """Erase a child's templates once the last recognition (or enrolment) is older than the
    school's maximum (BIPA: 3 years)."""
    erased = 0
    for school in School.objects.all():
        cutoff = as_of - timedelta(days=school.template_max_age_days)
        with_templates = Student.objects.filter(school=school, templates__isnull=False).distinct()
        for batch in _students_in_batches(with_templates):
            ids = [s.pk for s in batch]
            last_event = dict(
                RecognitionEvent.objects.filter(student_id__in=ids)
                .values("student_id")
                .annotate(last=Max("at"))
                .values_list("student_id", "last")
            )
            last_template = dict(
                FaceTemplate.objects.filter(student_id__in=ids)
                .values("student_id")
                .annotate(last=Max("created_at"))
                .values_list("student_id", "last")
            )
            expired = [
                student
                for student in batch
                if max(d for d in (last_event.get(student.pk), last_template.get(student.pk)) if d)
                <= cutoff
            ]
            erased += _open_erasures(expired, "template_age", dry_run)
    return {"erasures_started": erased}


def job_recognition_events(*, as_of: datetime, dry_run: bool) -> dict:
    """Delete recognition events older than the school's event window, in short batches."""
    deleted = 0
    longest = 0.0
    for school in School.objects.all():
        cutoff = as_of - timedelta(days=school.event_window_days)
        old = RecognitionEvent.objects.filter(student__school=school, at__lt=cutoff)
        if dry_run:
            deleted += old.count()
            continue
        while True:
            started = time.monotonic()
            with transaction.atomic():
                # A subquery, not a list of ids sent back; ordered by `at` so the (at) index
                # bounds each batch, including the last, empty one.
                n = RecognitionEvent.objects.filter(
                    pk__in=old.order_by("at").values("pk")[:EVENT_BATCH]
                ).delete()[0]
            longest = max(longest, time.monotonic() - started)
            if not n:
                break
            deleted += n
    return {"events_deleted": deleted, "longest_transaction_ms": round(longest * 1000, 1)}


def job_consents(*, as_of: datetime, dry_run: bool) -> dict:
    """Remind guardians 30 days before a grant expires; erase children left with no active
    purpose (an expired consent is no consent)."""
    reminded = erased = 0
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
        # Anyone the portal still holds biometric data about: a template, a photo (one that is
        # still being processed, say) or recognition events.
        with_data = Student.objects.filter(school=school).filter(
            Exists(FaceTemplate.objects.filter(student=OuterRef("pk")))
            | Exists(Photo.objects.filter(student=OuterRef("pk")))
            | Exists(RecognitionEvent.objects.filter(student=OuterRef("pk")))
        )
        for batch in _students_in_batches(with_data):
            loaded = load_for_rule([s.pk for s in batch])
            lapsed = [
                student
                for student in batch
                if not any(s.active for s in purpose_statuses(loaded[student.pk], at=as_of))
            ]
            erased += _open_erasures(lapsed, "consent_expired", dry_run)
    return {"reminders_sent": reminded, "erasures_started": erased}


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
    send_mail(
        f"Consent for {purpose.name} ends on {expires:%d %B %Y}",
        (
            f"Hello {guardian.name},\n\nYour consent for {purpose.name} ends on "
            f"{expires:%d %B %Y}. After that, your child's biometric data for it stops being "
            f"used and is erased unless you give consent again. Sign in to decide: "
            f"{settings.SITE_URL}\n"
        ),
        None,
        [guardian.email],
    )


def job_erasure_watchdog(*, as_of: datetime, dry_run: bool) -> dict:
    """Re-drive erasure steps that stopped moving. Both runs count the stuck steps and expired
    leases (so a dry run says what the real one would pick up); the real run also reports
    what it re-drove."""
    return {
        "steps_stuck": stuck_steps(as_of).count(),
        "leases_expired": expired_leases(as_of).count(),
        "steps_redriven": 0 if dry_run else erasure_watchdog(now=as_of),
    }


def job_reconcile(*, as_of: datetime, dry_run: bool) -> dict:
    """Page through every holder's subjects (the holder shows each school only its own: its
    key names the tenant); erase any held without an active purpose, and subjects this portal
    has never heard of. A subject that belongs to another school's child is never touched (two
    schools configured with one key would otherwise erase each other's children)."""
    checked = erased = unknown = foreign = unreachable = 0
    for holder in Holder.objects.filter(enabled=True).select_related("school"):
        try:
            with holder.client(timeout=settings.HOLDER_TIMEOUT_SECONDS) as client:
                counts = _reconcile_holder(holder, client, as_of=as_of, dry_run=dry_run)
        except HolderError:
            unreachable += 1
            continue
        checked += counts["checked"]
        erased += counts["erased"]
        unknown += counts["unknown"]
        foreign += counts["foreign"]
    return {
        "subjects_checked": checked,
        "erasures_started": erased,
        "unknown_subjects_erased": unknown,
        "other_schools_subjects_left": foreign,
        "holders_unreachable": unreachable,
    }


def _reconcile_holder(holder: Holder, client, *, as_of: datetime, dry_run: bool) -> dict:
    counts = {"checked": 0, "erased": 0, "unknown": 0, "foreign": 0}
    subjects = list(client.iter_subjects())
    known = {
        str(s.subject_id): s
        for s in Student.objects.filter(subject_id__in=subjects).select_related("school")
    }
    students = {subject: s for subject, s in known.items() if s.school_id == holder.school_id}
    loaded = load_for_rule([s.pk for s in students.values()])
    for subject in subjects:
        counts["checked"] += 1
        student = students.get(subject)
        if subject in known and student is None:
            counts["foreign"] += 1  # another school's child: not this school's to erase
            continue
        if student is None:
            counts["unknown"] += 1
            if not dry_run:
                erased_n = client.delete_subject(subject)
                audit_record(
                    "retention.unknown_subject_erased",
                    actor=ACTOR,
                    school_id=holder.school_id,
                    subject=subject,
                    data={"holder": holder.name, "items": erased_n},
                )
            continue
        statuses = purpose_statuses(loaded[student.pk], at=as_of)
        if any(s.active for s in statuses):
            continue
        counts["erased"] += 1
        if dry_run or ErasureRequest.objects.filter(student=student, status__in=OPEN).exists():
            continue  # an open erasure reaches this holder itself
        if _has_data([student.pk]):
            erasure_open(student=student, trigger="reconciliation", actor=ACTOR)
        else:  # the portal holds nothing, yet the holder kept a copy: erase it there
            client.delete_subject(subject)
            audit_record(
                "retention.stray_copy_erased",
                actor=ACTOR,
                school_id=holder.school_id,
                subject=subject,
                data={"holder": holder.name},
            )
    return counts


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
