"""Erasure actions, one per kind of store: each erases a batch of steps' children, verifies,
and returns ({step pk: items erased}, {step pk: the error that stopped it})."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from django.conf import settings
from django.db import transaction
from django.db.models import Count

from ..crypto import child_keys_destroy, child_keys_for_reading
from ..holders.protocol import HolderRejected, HolderUnavailable
from ..matching import match_cache_forget, match_index_bump, match_index_version
from ..models import ErasureStep, FaceTemplate, Photo, RecognitionEvent
from ..storage import subject_files, subject_files_delete
from .plan import StepFailed

Outcome = tuple[dict[int, int], dict[int, Exception]]

EVENT_BATCH = 5000


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
    """Delete the children's events (in batches), templates and photo rows; verify none is left.

    With no template row left, no match index built from now on can hold a child, and
    identify() answers only for children who still have a template row — so a child's former
    face identifies no one (tests/test_erasure.py checks it with the real face). Rebuilding an
    index here to show it again would cost every erasure a decryption of the whole school.
    """
    student_ids = [s.request.student_id for s in steps if s.request.student_id]
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
            match_index_bump(school_id)
    left: Counter = Counter()
    for model in (RecognitionEvent, FaceTemplate, Photo):
        left.update(_grouped_counts(model, student_ids))
    done: dict[int, int] = {}
    failed: dict[int, Exception] = {}
    for step in steps:
        student_id = step.request.student_id
        if left[student_id]:
            failed[step.pk] = StepFailed(f"{left[student_id]} rows still present")
        else:
            done[step.pk] = erased[student_id]
    return done, failed


def erase_media_batch(steps: list[ErasureStep]) -> Outcome:
    done: dict[int, int] = {}
    failed: dict[int, Exception] = {}
    for step in steps:
        try:
            erased = subject_files_delete(step.request.subject_id)
            if subject_files(step.request.subject_id):
                raise StepFailed("photo files still present")
        except (StepFailed, OSError) as exc:
            failed[step.pk] = exc
        else:
            done[step.pk] = erased
    return done, failed


def erase_cache_batch(steps: list[ErasureStep]) -> Outcome:
    """Invalidate every process's match index of the schools concerned. It runs after the
    database step, so an index rebuilt from now on cannot contain the child; checked without
    rebuilding one."""
    schools = sorted({s.request.school_id for s in steps})
    before = {school_id: match_index_version(school_id) for school_id in schools}
    with transaction.atomic():
        for school_id in schools:
            match_index_bump(school_id)  # every process reloads before its next match
    for school_id in schools:
        match_cache_forget(school_id)
    unchanged = {
        school_id for school_id in schools if match_index_version(school_id) == before[school_id]
    }
    still_held = set(
        FaceTemplate.objects.filter(
            student_id__in=[s.request.student_id for s in steps]
        ).values_list("student_id", flat=True)
    )
    done: dict[int, int] = {}
    failed: dict[int, Exception] = {}
    for step in steps:
        if step.request.school_id in unchanged:
            failed[step.pk] = StepFailed("the match index version did not change")
        elif step.request.student_id in still_held:
            failed[step.pk] = StepFailed("the child's templates are still in the database")
        else:
            done[step.pk] = 0
    return done, failed


def erase_http_batch(steps: list[ErasureStep]) -> Outcome:
    """DELETE then GET (expect 404) each subject on one holder. A holder that cannot be
    reached fails the rest of the batch at once instead of timing out on every subject."""
    done: dict[int, int] = {}
    failed: dict[int, Exception] = {}
    holder = steps[0].holder
    if holder is None:  # the holder was removed from the configuration; nothing to reach
        return {s.pk: 0 for s in steps}, {}
    client = holder.client(timeout=settings.HOLDER_TIMEOUT_SECONDS)
    down = None
    for step in steps:
        if down is not None:
            failed[step.pk] = down
            continue
        subject = str(step.request.subject_id)
        try:
            erased = client.delete_subject(subject)
            if client.get_subject(subject) is not None:
                raise StepFailed("the holder still reports data for the subject")
        except HolderUnavailable as exc:
            failed[step.pk] = down = exc
        except (HolderRejected, StepFailed, OSError) as exc:
            failed[step.pk] = exc
        else:
            done[step.pk] = erased
    return done, failed


def destroy_keys(steps: list[ErasureStep]) -> Outcome:
    """Crypto-shredding, last: destroy the children's data keys and check none can be read."""
    student_ids = [s.request.student_id for s in steps]
    destroyed = child_keys_destroy(student_ids)
    readable = child_keys_for_reading(student_ids)
    done: dict[int, int] = {}
    failed: dict[int, Exception] = {}
    for step in steps:
        if step.request.student_id in readable:
            failed[step.pk] = StepFailed("the data key can still be read")
        else:
            done[step.pk] = int(step.request.student_id in destroyed)
    return done, failed


BATCH_ACTIONS: dict[str, Callable[[list[ErasureStep]], Outcome]] = {
    "database": erase_database_batch,
    "media": erase_media_batch,
    "cache": erase_cache_batch,
}
