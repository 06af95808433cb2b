"""Writes for biometric data: enrolment, template creation, copies to holders."""

from __future__ import annotations

import hashlib
import logging
from datetime import datetime, timedelta

import numpy as np
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from consent.actors import Actor
from consent.audit import audit_record
from consent.jobs import job_enqueue
from consent.models import Student
from consent.rules import active_purpose_codes

from .. import faces, image_checks
from ..crypto import encrypt_for_child
from ..erasure import COPY_TASK, describe, retry_delay
from ..holders.protocol import HolderError
from ..identity import child_identity_renew
from ..matching import match_index_bump
from ..models import FaceTemplate, Holder, Photo, PhotoStatus, TemplateCopy
from ..selectors import erasure_get_open, template_context, template_embedding
from ..storage import photo_file_delete, photo_file_read, photo_file_write

#: Registered in biometrics.tasks under these names (COPY_TASK comes from biometrics.erasure,
#: whose watchdog re-sends copies that have not arrived).
PHOTO_TASK = "biometrics.tasks.photo_process_task"

log = logging.getLogger(__name__)

NO_ACTIVE_CONSENT = "No purpose is active for this child, so no photo may be enrolled."


class NoActiveConsent(Exception):
    code = "no_active_consent"
    detail = NO_ACTIVE_CONSENT


def photo_enrol(
    *,
    student: Student,
    data: bytes,
    actor: Actor,
    source: str = "capture_station",
    captured_at: datetime | None = None,
    process_now: bool = False,
) -> Photo:
    """Accept an enrolment photo for a child whose consent is active.

    1. Refuse (and audit) when no purpose is active: nothing is stored.
    2. Check the image from its header alone (docs/bad-input.md): not an image, a wrong format,
       too large, too many pixels are refused at once, audited, and nothing is stored. Nothing
       is decoded here: this runs in web processes.
    3. The first enrolment after a verified erasure gives the child a new pseudonym and data
       key (`child_identity_renew`): the old ones are erased for good.
    4. Store the photo encrypted under the child's key, create the row (pending), audit it.
    5. After commit, the `faces` queue decodes it and looks for exactly one big-enough face
       (photo_process; or now, with process_now): the photo ends enrolled, or rejected with
       its reason and without its bytes.
    """
    if not active_purpose_codes(student) or erasure_get_open(student=student):
        audit_record(
            "biometrics.enrolment_refused",
            actor=actor,
            school_id=student.school_id,
            subject=student.subject_id,
            data={"reason": NoActiveConsent.code},
        )
        raise NoActiveConsent
    try:
        header = image_checks.image_header(data)
    except image_checks.ImageRejected as exc:
        audit_record(
            "biometrics.enrolment_rejected",
            actor=actor,
            school_id=student.school_id,
            subject=student.subject_id,
            data={"reason": exc.code, "bytes": len(data)},
        )
        raise

    child_identity_renew(student=student, actor=actor)
    photo = Photo(
        student=student,
        source=source,
        captured_at=captured_at or timezone.now(),
        sha256=hashlib.sha256(data).hexdigest(),
        width=header.width,
        height=header.height,
        content_type=header.content_type,
        size=len(data),
    )
    photo.storage_name = photo_file_write(student, photo.id, data)
    try:
        with transaction.atomic():
            photo.save()
            audit_record(
                "biometrics.photo_received",
                actor=actor,
                school_id=student.school_id,
                subject=student.subject_id,
                data={"photo": str(photo.id), "bytes": len(data)},
            )
            if not process_now:
                job_enqueue(PHOTO_TASK, photo.id)
    except Exception:
        photo_file_delete(photo.storage_name)
        raise
    if process_now:
        photo_process(photo_id=photo.id)
        photo.refresh_from_db()
    return photo


def photo_process(*, photo_id) -> Photo:
    """Compute the template for a pending photo (the faces worker). Idempotent: a done photo is
    left as it is.

    1. Claim the photo (pending only); re-check consent, which may have ended since upload.
    2. Decrypt, decode, detect exactly one big-enough face, embed. A photo that fails any of it
       (damaged, no face, several faces, a face too small, unreadable) is rejected with its
       reason and its bytes are deleted.
    3. Store the template encrypted; mark the photo enrolled with its upright size.
    4. Record a pending copy for every holder that receives templates; push after commit.
    """
    photo = Photo.objects.select_related("student__school").get(pk=photo_id)
    if photo.status != PhotoStatus.PENDING:
        return photo
    student = photo.student
    if not active_purpose_codes(student) or erasure_get_open(student=student):
        return _photo_reject(photo, "no_active_consent")
    data = photo_file_read(student.pk, photo.pk, photo.storage_name)
    try:
        image = faces.open_image(data)
        box = faces.find_single_face(image)
        embedding = faces.embed(image, box)
    except image_checks.ImageRejected as exc:
        return _photo_reject(photo, exc.code)
    except Exception:
        # Whatever else a hostile file does to the decoder or the detector, the photo must not
        # stay pending with its bytes: it is rejected, and the error logged (ids only).
        log.exception("photo %s could not be processed", photo.pk)
        return _photo_reject(photo, "unreadable_image")

    with transaction.atomic():
        claimed = Photo.objects.filter(pk=photo.pk, status=PhotoStatus.PENDING).update(
            status=PhotoStatus.ENROLLED, width=image.width, height=image.height
        )
        if not claimed:  # another worker got there first
            return Photo.objects.get(pk=photo.pk)
        template = template_create(student=student, photo=photo, embedding=embedding)
        audit_record(
            "biometrics.template_created",
            actor=Actor.system("faces worker"),
            school_id=student.school_id,
            subject=student.subject_id,
            data={
                "photo": str(photo.pk),
                "template": str(template.pk),
                "model": template.model,
                "face_box": list(box),
            },
        )
    photo.refresh_from_db()
    return photo


def _photo_reject(photo: Photo, code: str) -> Photo:
    with transaction.atomic():
        if Photo.objects.filter(pk=photo.pk, status=PhotoStatus.PENDING).update(
            status=PhotoStatus.REJECTED, reason=code, storage_name=""
        ):
            audit_record(
                "biometrics.photo_rejected",
                actor=Actor.system("faces worker"),
                school_id=photo.student.school_id,
                subject=photo.student.subject_id,
                data={"photo": str(photo.pk), "reason": code},
            )
    # A rejected photo keeps no bytes.
    photo_file_delete(photo.storage_name)
    photo.refresh_from_db()
    return photo


def template_create(
    *, student: Student, photo: Photo | None, embedding: np.ndarray
) -> FaceTemplate:
    """Store an embedding encrypted, and queue a copy to every holder that receives templates."""
    vector = np.asarray(embedding, dtype="<f8")
    if vector.shape != (128,) or not np.all(np.isfinite(vector)):
        raise ValueError("an embedding is 128 finite numbers")
    template = FaceTemplate(
        student=student,
        photo=photo,
        model=faces.MODEL_NAME,
        model_version=faces.MODEL_VERSION,
        detector=faces.DETECTOR,
        landmarks=faces.LANDMARKS,
    )
    template.ciphertext = encrypt_for_child(
        student, vector.tobytes(), context=template_context(template.id)
    )
    template.save()
    match_index_bump(student.school_id, [student.pk])
    holders = Holder.objects.filter(
        school_id=student.school_id, enabled=True, receives_templates=True
    )
    copies = TemplateCopy.objects.bulk_create(
        [TemplateCopy(template=template, holder=h) for h in holders]
    )
    for copy in copies:
        job_enqueue(COPY_TASK, copy.pk)
    return template


def template_copy_push(*, copy_id: int) -> TemplateCopy | None:
    """Send one template copy to its holder. Idempotent (PUT), and never raises for the
    holder: a copy that failed is marked failed and tried again later (backing off with its
    attempts; the erasure watchdog re-sends it if that message is lost), until it is stored or
    the child's erasure removes the template, and the copy with it. The holder is told when the
    template was made, so it refuses a copy older than the subject's last erasure.
    """
    copy = (
        TemplateCopy.objects.select_related("template__student", "holder")
        .filter(pk=copy_id)
        .first()
    )
    if copy is None or copy.status == TemplateCopy.Status.STORED:
        return copy  # stored already, or erased with its template
    template = copy.template
    if not copy.holder.enabled or not copy.holder.receives_templates:
        return copy
    if erasure_get_open(student=template.student):
        return copy  # the erasure supersedes it
    attempts = copy.attempts + 1
    TemplateCopy.objects.filter(pk=copy.pk).update(attempts=F("attempts") + 1)
    try:
        with copy.holder.client() as client:
            client.put_template(
                str(template.student.subject_id),
                str(template.pk),
                template_embedding(template).tolist(),
                template.model,
                created_at=template.created_at,
            )
    except HolderError as exc:
        delay = retry_delay(attempts)
        TemplateCopy.objects.filter(pk=copy.pk).exclude(status=TemplateCopy.Status.STORED).update(
            status=TemplateCopy.Status.FAILED,
            last_error=describe(exc),
            next_attempt_at=timezone.now() + timedelta(seconds=delay),
        )
        job_enqueue(COPY_TASK, copy.pk, countdown=delay)
        log.warning("template copy %s to %s failed: %s", copy.pk, copy.holder.name, describe(exc))
    else:
        TemplateCopy.objects.filter(pk=copy.pk).update(
            status=TemplateCopy.Status.STORED, stored_at=timezone.now(), last_error=""
        )
    copy.refresh_from_db()
    return copy
