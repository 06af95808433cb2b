"""Erasure actions, one per kind of store: each erases a batch of steps' children, verifies,
and returns an Outcome: per step, the items erased (verified), or the error that stopped it, and
what the verification measured (the receipt's figures)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from django.conf import settings
from django.db import transaction
from django.db.models import Count
from django.utils import timezone

from ..crypto import ShredFailed, child_keys_destroy, child_keys_for_reading
from ..holders.protocol import HolderError, HolderRejected, HolderUnavailable
from ..matching import match_index_bump, match_index_drop_erased, match_index_version
from ..models import ChildKey, ErasureStep, FaceTemplate, Photo, RecognitionEvent
from ..storage import subject_files, subject_files_delete
from .plan import StepFailed
from .probe import former_faces, probe_former_faces
from .stores import erasure_store

EVENT_BATCH = 5000


@dataclass
class Outcome:
    done: dict[int, int] = field(default_factory=dict)  # step pk → items erased (verified)
    failed: dict[int, Exception] = field(default_factory=dict)  # step pk → what stopped it
    proof: dict[int, dict] = field(default_factory=dict)  # step pk → what verification measured


def _grouped_counts(
    model: type[RecognitionEvent] | type[FaceTemplate] | type[Photo], student_ids: list
) -> Counter:
    rows = (
        model._default_manager.filter(student_id__in=student_ids)
        .order_by()
        .values("student_id")
        .annotate(n=Count("pk"))
        .values_list("student_id", "n")
    )
    return Counter(dict(rows))


def erase_database_batch(steps: list[ErasureStep]) -> Outcome:
    """Delete the children's events (in batches), templates and photo rows; verify none is
    left; then prove it: their former faces, decrypted before the rows went and kept only in
    memory, are probed against the school's match index rebuilt without them."""
    student_ids = [s.request.student_id for s in steps if s.request.student_id]
    faces = former_faces(student_ids)
    erased: Counter = Counter()
    for model in (RecognitionEvent, FaceTemplate, Photo):
        erased.update(_grouped_counts(model, student_ids))
    while True:  # events in batches, so no transaction holds a long lock
        with transaction.atomic():
            ids = list(
                RecognitionEvent.objects.filter(student_id__in=student_ids).values_list(
                    "pk", flat=True
                )[:EVENT_BATCH]
            )
            if not ids:
                break
            RecognitionEvent.objects.filter(pk__in=ids).delete()
    with transaction.atomic():
        FaceTemplate.objects.filter(student_id__in=student_ids).delete()  # copies go too
        Photo.objects.filter(student_id__in=student_ids).delete()
        for school_id in sorted({s.request.school_id for s in steps}):
            match_index_bump(
                school_id,
                [s.request.student_id for s in steps if s.request.school_id == school_id],
            )
    left: Counter = Counter()
    for model in (RecognitionEvent, FaceTemplate, Photo):
        left.update(_grouped_counts(model, student_ids))
    figures = probe_former_faces(steps, faces)
    faces.clear()
    outcome = Outcome()
    for step in steps:
        student_id = step.request.student_id
        probe = figures.get(student_id, {})
        if left[student_id]:
            outcome.failed[step.pk] = StepFailed(f"{left[student_id]} rows still present")
        elif probe.get("matches_to_the_child"):
            outcome.failed[step.pk] = StepFailed("the former face still matches the child")
        else:
            outcome.done[step.pk] = erased[student_id]
            if probe.get("templates_probed") or not step.proof:  # a re-run keeps the first
                outcome.proof[step.pk] = {"match_index_probe": probe}
    return outcome


def erase_media_batch(steps: list[ErasureStep]) -> Outcome:
    outcome = Outcome()
    for step in steps:
        try:
            erased = subject_files_delete(step.request.subject_id)
            if subject_files(step.request.subject_id):
                raise StepFailed("photo files still present")
        except (StepFailed, OSError) as exc:
            outcome.failed[step.pk] = exc
        else:
            outcome.done[step.pk] = erased
    return outcome


def erase_cache_batch(steps: list[ErasureStep]) -> Outcome:
    """Invalidate every process's match index of the schools concerned. It runs after the
    database step, so an index rebuilt from now on cannot contain the child; checked without
    rebuilding one (the database step's probe did)."""
    schools = sorted({s.request.school_id for s in steps})
    before = {school_id: match_index_version(school_id) for school_id in schools}
    with transaction.atomic():
        for school_id in schools:
            match_index_bump(  # every process takes the change in before its next match
                school_id,
                [s.request.student_id for s in steps if s.request.school_id == school_id],
            )
    for school_id in schools:
        match_index_drop_erased(  # this process's index, at once; no rebuild
            school_id, [s.request.student_id for s in steps if s.request.school_id == school_id]
        )
    unchanged = {
        school_id for school_id in schools if match_index_version(school_id) == before[school_id]
    }
    still_held = set(
        FaceTemplate.objects.filter(
            student_id__in=[s.request.student_id for s in steps]
        ).values_list("student_id", flat=True)
    )
    outcome = Outcome()
    for step in steps:
        if step.request.school_id in unchanged:
            outcome.failed[step.pk] = StepFailed("the match index version did not change")
        elif step.request.student_id in still_held:
            outcome.failed[step.pk] = StepFailed("the child's templates are still in the database")
        else:
            outcome.done[step.pk] = 0
    return outcome


def erase_store_batch(steps: list[ErasureStep]) -> Outcome:
    """A store registered by an app above (the portal's downloads): it erases and verifies."""
    outcome = Outcome()
    store = erasure_store(steps[0].kind)
    if store is None:
        for step in steps:
            outcome.failed[step.pk] = StepFailed(f"no store is registered for {step.kind!r}")
        return outcome
    by_student = {s.request.student_id: s for s in steps if s.request.student_id}
    done, failed = store.erase(list(by_student)) if by_student else ({}, {})
    for step in steps:
        student_id = step.request.student_id
        if student_id in failed:
            outcome.failed[step.pk] = failed[student_id]
        elif student_id is None or student_id in done:
            outcome.done[step.pk] = done.get(student_id, 0) if student_id else 0
        else:
            outcome.failed[step.pk] = StepFailed("the store did not report on the child")
    return outcome


def erase_http_batch(steps: list[ErasureStep]) -> Outcome:
    """One holder: erase the batch's subjects in one request (an explicit list), then ask for
    each — it must answer 404. A holder that cannot be reached fails the rest of the batch at
    once instead of timing out on every subject."""
    outcome = Outcome()
    holder = steps[0].holder
    if holder is None:  # removed from the configuration: only a DPO can confirm now
        for step in steps:
            outcome.failed[step.pk] = StepFailed("the holder was removed from the configuration")
        return outcome
    by_subject = {str(s.request.subject_id): s for s in steps}
    with holder.client(timeout=settings.HOLDER_TIMEOUT_SECONDS) as client:
        try:
            erased = client.delete_subjects(list(by_subject))
        except HolderError as exc:
            for step in steps:
                outcome.failed[step.pk] = exc
            return outcome
        down: Exception | None = None
        for subject, step in by_subject.items():
            if down is not None:
                outcome.failed[step.pk] = down
                continue
            try:
                if client.get_subject(subject) is not None:
                    raise StepFailed("the holder still reports data for the subject")
            except HolderUnavailable as exc:
                outcome.failed[step.pk] = down = exc
            except (HolderRejected, StepFailed) as exc:
                outcome.failed[step.pk] = exc
            else:
                outcome.done[step.pk] = erased[subject]
                outcome.proof[step.pk] = {
                    "holder": {
                        "erased": erased[subject],
                        "answered": 404,
                        "asked_at": timezone.now().isoformat(),
                    }
                }
    return outcome


def destroy_keys(steps: list[ErasureStep]) -> Outcome:
    """Crypto-shredding, last: destroy the children's data keys (the key store's own copy of
    the old bytes included) and check none can be read."""
    student_ids = [s.request.student_id for s in steps if s.request.student_id]
    outcome = Outcome()
    try:
        child_keys_destroy(student_ids)
    except ShredFailed as exc:
        for step in steps:
            outcome.failed[step.pk] = StepFailed(str(exc))
        return outcome
    readable = child_keys_for_reading(student_ids)
    destroyed = set(  # now or by an earlier try
        ChildKey.objects.filter(
            student_id__in=student_ids, wrapped_key__isnull=True, destroyed_at__isnull=False
        ).values_list("student_id", flat=True)
    )
    for step in steps:
        if step.request.student_id in readable:
            outcome.failed[step.pk] = StepFailed("the data key can still be read")
        else:
            outcome.done[step.pk] = int(step.request.student_id in destroyed)
    return outcome


BATCH_ACTIONS: dict[str, Callable[[list[ErasureStep]], Outcome]] = {
    "database": erase_database_batch,
    "media": erase_media_batch,
    "cache": erase_cache_batch,
}


def action_for(kind: str) -> Callable[[list[ErasureStep]], Outcome]:
    return BATCH_ACTIONS.get(kind, erase_store_batch)
