"""Reads about a child's biometric data: the held-data document, erasures, decrypted items.

`held_data` builds the one held-data document. The child page renders it, the API serialises it
(`GET /api/v1/children/{id}/`), and the export writes it into data.json and index.html, adding
only what a download alone carries (the files, the 128 numbers, every event and every access).
Each section has its own builder below; together they run a fixed number of queries however
many photos, templates or recognition events the child has.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
from django.db.models import Count, Q
from django.shortcuts import get_object_or_404
from django.utils import timezone
from django.utils.translation import gettext as _

from consent.audit import ACCESS_ACTIONS, ACCESS_WORDS
from consent.compiled import CompiledQuery, run_together
from consent.languages import label_in
from consent.models import AuditEvent, Guardian, Purpose, RetiredSubject, Student
from consent.rules import purpose_statuses, rule_calls, rule_loaded
from consent.selectors import child_voice, children_for_guardian, consent_decisions, purpose_rows
from consent.texts import purpose_words

from .crypto import decrypt_for_child
from .due import destroy_by, erasure_due, held_calls, held_of
from .models import (
    OPEN,
    ErasureRequest,
    FaceTemplate,
    Holder,
    Photo,
    PhotoStatus,
    RecognitionEvent,
)
from .storage import photo_file_read
from .systems import MATCH_CACHE, PHOTO_STORAGE, PORTAL_DB, holder_system

RECENT_EVENTS = 20
ACCESS_LOG_LIMIT = 50
# A rejected or erased photo is no longer held for the child.
HELD_PHOTOS = [PhotoStatus.PENDING, PhotoStatus.ENROLLED]


def held_data(
    student: Student,
    *,
    viewer_guardian_id: int | None = None,
    viewer_child: bool = False,
    voice: bool = False,
) -> dict:
    """The held-data document for one child (the caller has already checked ownership).

    Sections: child; purposes (as `consent_overview`, each with its decisions); every
    consent decision, oldest first; photos and templates, newest first; recognition events
    (the count and the newest 20); systems; retention; the access log (the newest 50);
    erasures, newest first. `viewer_guardian_id` turns that guardian's own decisions and looks
    into "you"; `viewer_child` (the child on their own page) the child's own. `voice`: also
    what the child said for themselves (`child_voice`, for the pages), from the same rows.

    Language: words meant to be read are in the active language (the request's, or the
    export's): purpose names and reasons, the retention rule, who looked and what they did, and
    each system's `label` and `holds`. What a program matches on is not: ids, status and kind
    codes, and each system's `name`, the stable English name that erasure steps and deletion
    receipts carry too. So for a zh-hans request a system reads `{"name": "Photo storage",
    "label": "照片存储", "holds": ["照片"], …}`; in English `label` equals `name`.
    """
    now = timezone.now()
    # Every row the document reads but the access log, in one round trip (consent.compiled):
    # the rule's, then this module's, then what the retention dues read.
    calls = rule_calls(student.pk)
    ours = [(query, {"student": student.pk}) for query in _DOCUMENT.values()]
    found = run_together(*calls, *ours, *held_calls(student.pk))
    loaded = rule_loaded(found[: len(calls)])
    if loaded is None:
        raise Student.DoesNotExist
    student = loaded
    rows = dict(zip(_DOCUMENT, found[len(calls) : len(calls) + len(ours)], strict=True))
    held = held_of(found[len(calls) + len(ours) :])
    statuses = purpose_statuses(student, at=now)
    photos, templates = rows["photos"], rows["templates"]
    events = _events(student, rows["recent_events"], rows["event_count"])
    said = {"voice": child_voice(student, at=now)} if voice else {}
    return {
        **said,
        "child": _child(student),
        "purposes": purpose_rows(
            student, statuses, viewer_id=viewer_guardian_id, viewer_child=viewer_child
        ),
        "consent_decisions": consent_decisions(
            student, viewer_id=viewer_guardian_id, viewer_child=viewer_child
        ),
        "photos": _photos(photos),
        "templates": _templates(templates),
        "recognition_events": events,
        "systems": _systems(photos, templates, events["count"], rows["holders"]),
        "retention": _retention(student, now=now, held=held),
        "access_log": _access_log(
            [str(student.subject_id), *(str(s) for (s,) in rows["retired_subjects"])],
            viewer_guardian_id,
            viewer_child,
        ),
        "erasures": _erasures(rows["erasures"]),
    }


def _copies(status: str, student) -> Count:
    return Count("copies", filter=Q(copies__template__student=student, copies__status=status))


def _one_child(build) -> CompiledQuery:
    return CompiledQuery(build, student=Student._meta.pk)


# What the document reads of one child besides the rule's rows, by section.
_DOCUMENT = {
    "photos": _one_child(
        lambda student: Photo.objects.filter(student_id=student, status__in=HELD_PHOTOS).order_by(
            "-captured_at"
        )
    ),
    "templates": _one_child(
        lambda student: FaceTemplate.objects.filter(student_id=student)
        .defer("ciphertext")
        .order_by("-created_at")
    ),
    "recent_events": _one_child(
        lambda student: RecognitionEvent.objects.filter(student_id=student).order_by("-at")[
            :RECENT_EVENTS
        ]
    ),
    "event_count": _one_child(
        lambda student: RecognitionEvent.objects.filter(student_id=student)
        .order_by()
        .values("student_id")
        .annotate(n=Count("id"))
        .values_list("n")
    ),
    # Each holder of the child's school, with its copies of the child's templates.
    "holders": _one_child(
        lambda student: Holder.objects.filter(school__students__pk=student)
        .annotate(stored=_copies("stored", student), pending=_copies("pending", student))
        .order_by("name")
        .values_list("name", "labels", "stored", "pending")
    ),
    # The access log is read under every pseudonym the child had (see `_access_log`).
    "retired_subjects": _one_child(
        lambda student: RetiredSubject.objects.filter(student_id=student)
        .order_by("-retired_at", "-pk")
        .values_list("subject_id")
    ),
    "erasures": _one_child(
        lambda student: ErasureRequest.objects.filter(student_id=student).order_by("-requested_at")
    ),
}


def _child(student: Student) -> dict:
    return {
        "id": student.pk,
        "pseudonym": student.subject_id,
        "name": student.name,
        "school": student.school.name,
        "school_slug": student.school.slug,
        "class_name": student.class_name,
        "status": student.status,
    }


def _photos(photos: list[Photo]) -> list[dict]:
    return [
        {
            "id": p.pk,
            "captured_at": p.captured_at,
            "source": p.source,
            "sha256": p.sha256,
            "width": p.width,
            "height": p.height,
            "content_type": p.content_type,
            "status": p.status,
        }
        for p in photos
    ]


def _templates(templates: list[FaceTemplate]) -> list[dict]:
    return [
        {
            "id": t.pk,
            "created_at": t.created_at,
            "model": t.model,
            "model_version": t.model_version,
            "detector": t.detector,
            "landmarks": t.landmarks,
            "dimensions": t.dimensions,
            "photo_id": t.photo_id,
        }
        for t in templates
    ]


def _events(student: Student, recent: list[RecognitionEvent], count: list) -> dict:
    """The count and the newest events; their purposes (with their texts) are the school's,
    which the student loaded for the rule already carries."""
    purposes = {p.pk: p for p in student.school.purposes.all()}
    missing = {e.purpose_id for e in recent} - set(purposes)
    if missing:  # not the school's: never written so, but shown all the same
        purposes.update(Purpose.objects.prefetch_related("texts").in_bulk(missing))
    return {
        "count": count[0][0] if count else 0,
        "recent": [
            {
                "at": e.at,
                "device": e.device,
                "purpose": purposes[e.purpose_id].code,
                # For the page: the purpose's name in the reader's language (the API and the
                # export publish the code).
                "purpose_name": purpose_words(purposes[e.purpose_id]).name,
                "distance": round(e.distance, 4),
            }
            for e in recent
        ],
    }


def _systems(
    photos: list[Photo], templates: list[FaceTemplate], event_count: int, holders: list[tuple]
) -> list[dict]:
    """Where the child's data is: the built-in systems, then each holder (by name) that holds
    a copy or is about to be sent one. The match cache holds templates only while there are."""
    rows = [
        PORTAL_DB.row(len(photos) + len(templates) + event_count),
        PHOTO_STORAGE.row(sum(1 for p in photos if p.storage_name)),
    ]
    if templates:
        rows.append(MATCH_CACHE.row(len(templates)))
    rows += [
        holder_system(name, label_in(name, labels)).row(stored, pending=pending)
        for name, labels, stored, pending in holders
        if stored or pending
    ]
    return rows


def _retention(student: Student, *, now: datetime, held: dict) -> dict:
    """The latest date everything biometric about the child will be destroyed, and why: the
    first EVERYTHING due of `erasure_due`, the one answer the retention jobs act on."""
    first = destroy_by(erasure_due(student, at=now, loaded=True, held=held))
    return {
        "destroy_by": first.by,
        "rule": first.rule,
        "recognition_events_kept_days": student.school.event_window_days,
    }


def _access_log(
    pseudonyms: list[str], viewer_guardian_id: int | None, viewer_child: bool = False
) -> list[dict]:
    # Under every pseudonym the child had (as `Student.pseudonyms`): a look before an erasure
    # stays the parent's to see.
    access = AuditEvent.objects.filter(subject__in=pseudonyms, action__in=ACCESS_ACTIONS).order_by(
        "-at", "-id"
    )[:ACCESS_LOG_LIMIT]
    return [
        {
            "at": a.at,
            "actor": _actor_words(a, viewer_guardian_id, viewer_child),
            "action": a.action,
            "what": str(ACCESS_WORDS[a.action]),
        }
        for a in access
    ]


def _actor_words(
    event: AuditEvent, viewer_guardian_id: int | None, viewer_child: bool = False
) -> str:
    if (
        event.actor_kind == "guardian"
        and viewer_guardian_id
        and event.actor_id == str(viewer_guardian_id)
    ) or (event.actor_kind == "child" and viewer_child):
        return _("You")
    kinds = {
        "child": _("The child"),
        "guardian": _("Parent"),
        "staff": _("School staff"),
        "api_key": _("School system"),
        "system": _("Guardian (automatic)"),
    }
    label = kinds.get(event.actor_kind, event.actor_kind)
    return f"{event.actor_label} ({label})" if event.actor_label else label


def _erasures(erasures: list[ErasureRequest]) -> list[dict]:
    return [
        {
            "id": e.pk,
            "status": e.status,
            "requested_at": e.requested_at,
            "completed_at": e.completed_at,
        }
        for e in erasures
    ]


def erasure_for_guardian(guardian: Guardian, erasure_id: object) -> ErasureRequest:
    """An erasure of one of this guardian's children; Http404 otherwise."""
    return get_object_or_404(
        ErasureRequest.objects.prefetch_related("steps"),
        pk=erasure_id,
        student__in=children_for_guardian(guardian),
    )


def erasure_get_open(*, student: Student) -> ErasureRequest | None:
    """The child's erasure still under way, if there is one (at most one at a time)."""
    return ErasureRequest.objects.filter(student=student, status__in=OPEN).first()


def template_context(template_id: object) -> str:
    """The associated data a template's ciphertext is bound to (its row, not another's)."""
    return f"template:{template_id}"


def template_embedding(template: FaceTemplate, key: bytes | None = None) -> np.ndarray:
    """The 128 numbers of a template, decrypted under the child's key."""
    raw = decrypt_for_child(
        template.student_id, template.ciphertext, context=template_context(template.pk), key=key
    )
    return np.frombuffer(raw, dtype="<f8").copy()


def photo_bytes(photo: Photo, key: bytes | None = None) -> bytes:
    """The enrolment photo's original bytes, decrypted under the child's key."""
    return photo_file_read(photo.student_id, photo.pk, photo.storage_name, key=key)
