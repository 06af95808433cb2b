"""What is held about a child, where, why and until when — the parent's view (SPEC §3, §8).

`held_data` builds the held-data document used by both the child page and the API, in a fixed
number of queries however many photos, templates or recognition events the child has.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
from django.db.models import Count, Max, Q
from django.shortcuts import get_object_or_404
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy as _lazy

from consent.audit import ACCESS_ACTIONS
from consent.models import AuditEvent, Guardian, Student, StudentStatus
from consent.rules import load_for_rule, purpose_statuses
from consent.selectors import children_for_guardian

from .crypto import decrypt_for_child
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

ACCESS_WORDS = {
    "biometrics.photo_viewed": _lazy("looked at a photo"),
    "biometrics.template_viewed": _lazy("looked at a face template"),
    "biometrics.held_data_viewed": _lazy("looked at what is held"),
    "export.requested": _lazy("asked for a download"),
    "export.downloaded": _lazy("downloaded everything"),
    "admin.child_viewed": _lazy("opened the child's record"),
}
RECENT_EVENTS = 20
ACCESS_LOG_LIMIT = 50
PORTAL_DB = "Guardian portal database"
PHOTO_STORAGE = "Photo storage"


def retention_for(
    student: Student, statuses, *, last_interaction: datetime | None, now: datetime
) -> dict:
    """The latest date everything biometric about the child will be destroyed, and the rule.

    The earliest of: leaving + the leaver window; last recognition (or enrolment) + the
    template maximum age (BIPA); the end of the last active consent. With nothing active,
    erasure is due now.
    """
    school = student.school
    candidates: list[tuple[datetime, str]] = []
    if student.status == StudentStatus.LEAVER and student.left_on:
        candidates.append(
            (
                student.left_on + timedelta(days=school.leaver_window_days),
                _("%(days)s days after leaving the school") % {"days": school.leaver_window_days},
            )
        )
    if last_interaction:
        years = round(school.template_max_age_days / 365, 1)
        candidates.append(
            (
                last_interaction + timedelta(days=school.template_max_age_days),
                _("%(years)s years after the last recognition or enrolment")
                % {"years": f"{years:g}"},
            )
        )
    active = [s for s in statuses if s.active]
    if active:
        candidates.append(
            (max(s.expires_at for s in active), _("when the last consent given ends"))
        )
    else:
        candidates.append((now, _("now: no purpose is active, so everything is to be erased")))
    destroy_by, rule = min(candidates, key=lambda c: c[0])
    return {
        "destroy_by": destroy_by,
        "rule": rule,
        "recognition_events_kept_days": school.event_window_days,
    }


def held_data(student: Student, *, viewer_guardian_id: int | None = None) -> dict:
    """The held-data document for one child (the caller has already checked ownership)."""
    now = timezone.now()
    student = load_for_rule([student.pk])[student.pk]
    school = student.school
    statuses = purpose_statuses(student, at=now)

    photos = list(
        Photo.objects.filter(
            student=student, status__in=[PhotoStatus.PENDING, PhotoStatus.ENROLLED]
        ).order_by("-captured_at")
    )
    templates = list(
        FaceTemplate.objects.filter(student=student).defer("ciphertext").order_by("-created_at")
    )
    events = RecognitionEvent.objects.filter(student=student)
    event_stats = events.aggregate(count=Count("id"), last=Max("at"))
    recent = list(events.select_related("purpose").order_by("-at")[:RECENT_EVENTS])
    holders = list(
        Holder.objects.filter(school=school).annotate(
            stored=Count(
                "copies",
                filter=Q(copies__template__student=student, copies__status="stored"),
            ),
            pending=Count(
                "copies",
                filter=Q(copies__template__student=student, copies__status="pending"),
            ),
        )
    )
    access = list(
        AuditEvent.objects.filter(
            subject=str(student.subject_id), action__in=ACCESS_ACTIONS
        ).order_by("-at", "-id")[:ACCESS_LOG_LIMIT]
    )
    erasures = list(ErasureRequest.objects.filter(student=student).order_by("-requested_at"))

    last_interaction = max(
        [d for d in [event_stats["last"], *(t.created_at for t in templates[:1])] if d],
        default=None,
    )
    systems = [
        {
            "name": PORTAL_DB,
            "kind": "database",
            "holds": ["photo records", "templates", "recognition events"],
            "items": len(photos) + len(templates) + event_stats["count"],
        },
        {
            "name": PHOTO_STORAGE,
            "kind": "media",
            "holds": ["photos"],
            "items": len([p for p in photos if p.storage_name]),
        },
    ]
    if templates:
        systems.append(
            {
                "name": "Match cache",
                "kind": "cache",
                "holds": ["templates (in the memory of the matching processes)"],
                "items": len(templates),
            }
        )
    systems += [
        {
            "name": h.name,
            "kind": "http",
            "holds": ["templates"],
            "items": h.stored,
            "pending": h.pending,
        }
        for h in holders
        if h.stored or h.pending
    ]
    retention = retention_for(student, statuses, last_interaction=last_interaction, now=now)
    return {
        "child": {
            "id": student.pk,
            "name": student.name,
            "school": school.name,
            "school_slug": school.slug,
            "class_name": student.class_name,
            "status": student.status,
        },
        "purposes": [
            {
                "code": s.code,
                "name": s.purpose.name,
                "status": s.status,
                "reason": s.reason_text,
                "reason_code": s.reason,
                "alternative": s.purpose.alternative,
                "expires_at": s.expires_at,
            }
            for s in statuses
        ],
        "photos": [
            {
                "id": p.pk,
                "captured_at": p.captured_at,
                "source": p.source,
                "sha256": p.sha256,
                "width": p.width,
                "height": p.height,
                "status": p.status,
            }
            for p in photos
        ],
        "templates": [
            {
                "id": t.pk,
                "created_at": t.created_at,
                "model": t.model,
                "model_version": t.model_version,
                "detector": t.detector,
                "dimensions": t.dimensions,
                "photo_id": t.photo_id,
            }
            for t in templates
        ],
        "recognition_events": {
            "count": event_stats["count"],
            "recent": [
                {
                    "at": e.at,
                    "device": e.device,
                    "purpose": e.purpose.code,
                    "distance": round(e.distance, 4),
                }
                for e in recent
            ],
        },
        "systems": systems,
        "retention": retention,
        "access_log": [
            {
                "at": a.at,
                "actor": _actor_words(a, viewer_guardian_id),
                "action": a.action,
                "what": str(ACCESS_WORDS.get(a.action, a.action)),
            }
            for a in access
        ],
        "erasures": [
            {
                "id": e.pk,
                "status": e.status,
                "requested_at": e.requested_at,
                "completed_at": e.completed_at,
            }
            for e in erasures
        ],
    }


def _actor_words(event: AuditEvent, viewer_guardian_id: int | None) -> str:
    if (
        event.actor_kind == "guardian"
        and viewer_guardian_id
        and event.actor_id == str(viewer_guardian_id)
    ):
        return _("You")
    kinds = {
        "guardian": _("Parent"),
        "staff": _("School staff"),
        "api_key": _("School system"),
        "system": _("Guardian (automatic)"),
    }
    label = kinds.get(event.actor_kind, event.actor_kind)
    return f"{event.actor_label} ({label})" if event.actor_label else label


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
