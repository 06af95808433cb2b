"""Reconciliation: every holder's subjects checked against `erasure_due` (a retention job).

A holder may keep what the portal no longer knows of: a copy sent before an erasure it missed,
a subject planted by hand. Each subject it lists is erased there when the portal has never
heard of it, and otherwise when `erasure_due` says the child's data must be gone by now — not
before: a leaver's or a new notice's window keeps the holder's copy as it keeps the portal's.
"""

from __future__ import annotations

from datetime import datetime

from django.conf import settings

from consent.actors import Actor
from consent.audit import audit_record
from consent.models import Student

from .due import EVERYTHING, dues_for
from .erasure import OPEN, erasure_open
from .holders.client import HolderClient
from .holders.protocol import HolderError
from .models import ErasureRequest, Holder

ACTOR = Actor.system("retention")


def job_reconcile(*, as_of: datetime, dry_run: bool) -> dict:
    """Page through every holder's subjects (the holder shows each school only its own: its
    key names the tenant); erase any whose data `erasure_due` says must be gone by now, and
    every subject the portal has never heard of. A subject that belongs to another school's
    child is never touched (two schools configured with one key would otherwise erase each
    other's children)."""
    totals = {"checked": 0, "erased": 0, "unknown": 0, "foreign": 0}
    unreachable = 0
    for holder in Holder.objects.filter(enabled=True).select_related("school"):
        try:
            with holder.client(timeout=settings.HOLDER_TIMEOUT_SECONDS) as client:
                counts = _reconcile_holder(holder, client, as_of=as_of, dry_run=dry_run)
        except HolderError:
            unreachable += 1
            continue
        for key, n in counts.items():
            totals[key] += n
    return {
        "subjects_checked": totals["checked"],
        "erasures_started": totals["erased"],
        "unknown_subjects_erased": totals["unknown"],
        "other_schools_subjects_left": totals["foreign"],
        "holders_unreachable": unreachable,
    }


def _reconcile_holder(
    holder: Holder, client: HolderClient, *, as_of: datetime, dry_run: bool
) -> dict[str, int]:
    counts = {"checked": 0, "erased": 0, "unknown": 0, "foreign": 0}
    subjects = list(client.iter_subjects())
    known = {
        str(s.subject_id): s
        for s in Student.objects.filter(subject_id__in=subjects).select_related("school")
    }
    students = {subject: s for subject, s in known.items() if s.school_id == holder.school_id}
    children = {c.student.pk: c for c in dues_for(students.values(), at=as_of)}
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
        child = children[student.pk]
        everything = [d for d in child.due_now(as_of) if d.what == EVERYTHING]
        if not everything:
            continue  # kept: consent stands, or a window (leaver, new notice) is still open
        counts["erased"] += 1
        if dry_run or ErasureRequest.objects.filter(student=student, status__in=OPEN).exists():
            continue  # an open erasure reaches this holder itself
        if child.held.portal:
            erasure_open(student=student, trigger=everything[0].trigger, actor=ACTOR)
        else:  # the portal holds nothing, yet the holder kept a copy: erase it there
            client.delete_subject(subject)
            audit_record(
                "retention.stray_copy_erased",
                actor=ACTOR,
                school_id=holder.school_id,
                subject=subject,
                data={"holder": holder.name, "why": everything[0].reason},
            )
    return counts
