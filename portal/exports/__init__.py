"""Exports: a download of everything held about a child (docs/exports.md), asked for by a
parent or by the child on their own page. Each package is its asker's own: only they may
download it."""

from __future__ import annotations

import logging
import tempfile
from datetime import datetime, timedelta

from django.conf import settings
from django.core.files import File
from django.core.files.storage import default_storage
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.shortcuts import get_object_or_404
from django.urls import reverse
from django.utils import timezone

from biometrics.crypto import SealingWriter, open_stream
from biometrics.selectors import erasure_get_open
from consent.actors import Actor
from consent.audit import audit_record
from consent.jobs import job_enqueue
from consent.mail import email_render
from consent.models import Guardian, Student
from consent.texts import guardian_language

from ..models import Export
from .package import build_package

log = logging.getLogger(__name__)
IN_PROGRESS = [Export.Status.PENDING, Export.Status.RUNNING]
#: Registered in portal.exports.tasks under this name.
BUILD_TASK = "portal.exports.tasks.export_build_task"


def export_context(export_id) -> str:
    return f"export:{export_id}"


def _asker(export: Export) -> Actor:
    if export.guardian is not None:
        return Actor.guardian(export.guardian)
    return Actor.child(export.student)


def export_request(
    *,
    student: Student,
    guardian: Guardian | None = None,
    by_child: bool = False,
    language: str = "",
) -> Export:
    """Ask for a package, as a guardian or as the child (`by_child`, no guardian); one in
    progress per child and asker at a time (a second ask joins it). Each package is its
    asker's own: only they may download it."""
    if (guardian is None) != by_child:
        raise ValueError("an export is asked for by a guardian or by the child")
    mine = Export.objects.filter(
        student=student, guardian=guardian, by_child=by_child, status__in=IN_PROGRESS
    )
    existing = mine.first()
    if existing:
        return existing
    try:
        with transaction.atomic():
            export = Export.objects.create(
                student=student,
                guardian=guardian,
                by_child=by_child,
                language=language
                or (guardian_language(guardian) if guardian else settings.LANGUAGE_CODE),
                requested_at=timezone.now(),
            )
            audit_record(
                "export.requested",
                actor=_asker(export),
                school_id=student.school_id,
                subject=student.subject_id,
                data={"export": str(export.pk)},
            )
            job_enqueue(BUILD_TASK, export.pk)
    except IntegrityError:
        return mine.get()
    return export


def export_build(*, export_id) -> Export | None:
    """Build, encrypt and store the package. Idempotent: a finished export is left alone.

    1. Claim the export (pending → running); a stale running one may be claimed again.
    2. Stream the ZIP through the encrypting writer into a storage file.
    3. Record size, SHA-256 and expiry; email the parent.
    """
    export = (
        Export.objects.select_related("student__school", "guardian").filter(pk=export_id).first()
    )
    if export is None or export.status not in IN_PROGRESS:
        return export  # finished, or erased with the child
    if export.student is None or erasure_get_open(student=export.student):
        Export.objects.filter(pk=export.pk).update(status=Export.Status.FAILED, error="erased")
        return export  # the child is being erased: no new copy of its data
    Export.objects.filter(pk=export.pk).update(status=Export.Status.RUNNING, progress=1)

    def progress(pct: int) -> None:
        Export.objects.filter(pk=export.pk).update(progress=pct)

    student = export.student
    name = f"exports/{export.pk}.gvz"
    try:
        with tempfile.TemporaryFile() as sealed:
            writer = SealingWriter(student, sealed, context=export_context(export.pk))
            build_package(
                student=student,
                guardian=export.guardian,
                for_child=export.by_child,
                language=export.language,
                out=writer,
                progress=progress,
            )
            writer.close()
            sealed.seek(0)
            if default_storage.exists(name):
                default_storage.delete(name)
            stored = default_storage.save(name, File(sealed))
    except Exception as exc:
        log.exception("export %s failed", export.pk)
        Export.objects.filter(pk=export.pk).update(
            status=Export.Status.FAILED, error=type(exc).__name__
        )
        raise
    now = timezone.now()
    expires = now + timedelta(hours=student.school.export_expiry_hours)
    ready = Export.objects.filter(pk=export.pk, status__in=IN_PROGRESS).update(
        status=Export.Status.READY,
        progress=100,
        storage_name=stored,
        sha256=writer.sha256,
        size=writer.size,
        completed_at=now,
        expires_at=expires,
    )
    if not ready:  # the child's erasure removed the export while it was being built
        default_storage.delete(stored)
        return export
    export.refresh_from_db()
    _email_ready(export)
    return export


def _email_ready(export: Export) -> None:
    guardian = export.guardian
    if guardian is None:
        return  # the child has no address here: their page shows it is ready
    url = settings.SITE_URL.rstrip("/") + reverse("portal:export", args=[export.pk])
    # The guardian's language if they chose one, else the one they asked for the export in.
    subject, body = email_render(
        "portal/email/export_ready",
        {"guardian": guardian, "url": url, "export": export},
        language=guardian.language or export.language,
    )
    send_mail(subject, body, None, [guardian.email])


def export_expire(export: Export, *, now=None) -> bool:
    """Delete the file of an export past its expiry. Returns whether it expired now."""
    now = now or timezone.now()
    if export.status != Export.Status.READY or not export.expires_at or export.expires_at > now:
        return False
    if export.storage_name and default_storage.exists(export.storage_name):
        default_storage.delete(export.storage_name)
    return bool(
        Export.objects.filter(pk=export.pk, status=Export.Status.READY).update(
            status=Export.Status.EXPIRED, storage_name=""
        )
    )


def export_expire_due(*, now: datetime | None = None) -> int:
    now = now or timezone.now()
    count = 0
    for export in Export.objects.filter(status=Export.Status.READY, expires_at__lte=now):
        count += export_expire(export, now=now)
    return count


def job_exports(*, as_of: datetime, dry_run: bool) -> dict:
    """The retention job for downloads: delete the files of exports past their expiry."""
    if dry_run:
        due = Export.objects.filter(status=Export.Status.READY, expires_at__lte=as_of)
        return {"exports_expired": due.count()}
    return {"exports_expired": export_expire_due(now=as_of)}


def export_open(export: Export):
    """The package's plaintext chunks for the one who asked for it (logged as theirs)."""
    audit_record(
        "export.downloaded",
        actor=_asker(export),
        school_id=export.student.school_id,
        subject=export.student.subject_id,
        data={"export": str(export.pk)},
    )
    fh = default_storage.open(export.storage_name, "rb")

    def chunks():
        try:
            yield from open_stream(export.student_id, fh, context=export_context(export.pk))
        finally:
            fh.close()

    return chunks()


def export_for_child(student: Student, export_id) -> Export:
    """The export if this child asked for it themselves (a parent's package of the same child
    is the parent's: Http404), expired if due."""
    export = get_object_or_404(
        Export.objects.select_related("student"), pk=export_id, student=student, by_child=True
    )
    if export_expire(export):
        export.refresh_from_db()
    return export


def export_for_guardian(guardian: Guardian, export_id) -> Export:
    """The export if this guardian asked for it (only they may use it), expired if due."""
    export = get_object_or_404(
        Export.objects.select_related("student"), pk=export_id, guardian=guardian
    )
    if export_expire(export):
        export.refresh_from_db()
    return export
