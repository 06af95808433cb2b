"""The parent's use cases, one function per action, shared by the web pages and the JSON API.

Each takes the signed-in guardian and scopes its reads by it: another guardian's child (or that
child's template, photo, receipt or erasure) is Http404 here, whichever door asked. The pages
(`portal/views.py`) and the API (`portal/api/`) only parse their input, call one of these, and
render or serialise what it returns; neither imports the other.

Parental responsibility decides access (SPEC §8): a guardian linked without it sees the child's
name and each purpose's status, and nothing of the biometric data — photos, templates, events,
the access log, exports and erasures raise NotResponsible (the API's 403 `not_responsible`, the
page's explanation). The check is made here, at the moment of each use (an export download
asks again whether the guardian is still linked and responsible).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

import numpy as np
from django.http import Http404, StreamingHttpResponse
from django.shortcuts import get_object_or_404
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from biometrics.access import access_record
from biometrics.models import ErasureRequest, ErasureStatus, FaceTemplate, Photo, PhotoStatus
from biometrics.receipts import signed_receipt
from biometrics.selectors import (
    erasure_for_guardian,
    erasure_get_open,
    held_data,
    photo_bytes,
    template_embedding,
)
from biometrics.services import erasure_request_by_parent
from consent.actors import Actor
from consent.ages import is_adult
from consent.models import ConsentDecision, Guardian, Guardianship, Student
from consent.rules import PurposeStatus, load_for_rule, purpose_statuses
from consent.selectors import (
    child_for_guardian,
    child_voice,
    children_for_guardian,
    consent_overview,
    purpose_get,
)
from consent.services import consent_decide

from .exports import export_for_guardian, export_open, export_request
from .models import Export

# Which door a look came through; the access log records it.
Via = Literal["web", "api"]

# A rejected or erased photo is no longer the parent's to look at.
VIEWABLE_PHOTOS = [PhotoStatus.PENDING, PhotoStatus.ENROLLED]


NOT_RESPONSIBLE = _(
    "You are linked to this child without parental responsibility. You can see the child's "
    "purposes and their status, but the photos, face templates, recognition events, who looked "
    "at them, downloads and deletion are only for a parent with parental responsibility. If "
    "this is wrong, ask the school to correct it."
)


class NotResponsible(Exception):
    """The guardian is linked to the child without parental responsibility."""

    code = "not_responsible"

    @property
    def detail(self) -> str:
        return str(NOT_RESPONSIBLE)


ADULT_STUDENT = _(
    "This student is an adult now. Only they decide about their biometric data, on their own "
    "page; a parent's consent no longer counts, and a parent cannot delete their data."
)


class AdultStudent(NotResponsible):
    """From the 18th birthday a parent no longer decides for the student (SPEC §2 rule 5)."""

    code = "adult_student"

    @property
    def detail(self) -> str:
        return str(ADULT_STUDENT)


class ErasureNotFinished(Exception):
    """The deletion receipt exists only once every system has verified its erasure."""


class ExportNotReady(Exception):
    def __init__(self, export: Export) -> None:
        super().__init__(str(export.pk))
        self.export = export


class ExportGone(ExportNotReady):
    """Expired: the file was deleted."""


@dataclass(frozen=True)
class ChildRow:
    child: Student
    statuses: list[PurposeStatus]
    voice: dict  # what the child said for themselves (consent.selectors.child_voice)


@dataclass(frozen=True)
class DecisionRecorded:
    record: ConsentDecision
    status: PurposeStatus  # the purpose's status now, with this decision counted
    erasure: ErasureRequest | None  # the child's open erasure, if nothing is active any more


@dataclass(frozen=True)
class ShownTemplate:
    template: FaceTemplate
    embedding: np.ndarray


@dataclass(frozen=True)
class ShownPhoto:
    photo: Photo
    data: bytes


@dataclass(frozen=True)
class Receipt:
    body: dict
    filename: str

    @property
    def content_disposition(self) -> str:
        return f'attachment; filename="{self.filename}"'


def guardian_for_user(user) -> Guardian | None:
    """The guardian a signed-in account is. A staff account is never one (even if a guardian
    row named it), so a staff session never reaches a family's pages, nor a parent's the admin."""
    if user is None or not user.is_authenticated or user.is_staff or user.is_superuser:
        return None
    try:
        return user.guardian  # cached on the account once read (the bearer check reads it)
    except Guardian.DoesNotExist:
        return None


def child_get(*, guardian: Guardian, child_id: uuid.UUID | str) -> Student:
    """The guardian's own child; Http404 for anyone else's (or no one's)."""
    try:
        return child_for_guardian(guardian, child_id)
    except Student.DoesNotExist:
        raise Http404 from None


def is_responsible(guardian: Guardian, child: Student) -> bool:
    """Linked to the child with parental responsibility, now (asked once per request: the
    answer is kept on this instance of the child, which lives for the request)."""
    known = child.__dict__.setdefault("_responsible", {})
    if guardian.pk not in known:
        known[guardian.pk] = Guardianship.objects.filter(
            guardian=guardian, student=child, parental_responsibility=True
        ).exists()
    return known[guardian.pk]


def responsible_check(guardian: Guardian, child: Student | None) -> None:
    """Http404 unless linked to the child now; NotResponsible if linked without
    responsibility."""
    if child is not None and child.__dict__.get("_responsible", {}).get(guardian.pk):
        return  # is_responsible said so in this request
    link = (
        Guardianship.objects.filter(guardian=guardian, student=child)
        .values_list("parental_responsibility", flat=True)
        .first()
        if child is not None
        else None
    )
    if link is None:
        raise Http404
    if not link:
        raise NotResponsible


def child_document(*, guardian: Guardian, child: Student) -> dict:
    """The held-data document (photos, templates, events, access log…): responsible only."""
    responsible_check(guardian, child)
    return held_data(child, viewer_guardian_id=guardian.pk, voice=True)


def child_summary(*, guardian: Guardian, child: Student) -> dict:
    """What every linked guardian sees: the child's name and each purpose with its status."""
    _check_own(guardian, child)
    return {
        "child": {
            "id": child.pk,
            "name": child.name,
            "school": child.school.name,
            "class_name": child.class_name,
            "status": child.status,
        },
        "purposes": consent_overview(child, viewer=guardian),
        "voice": child_voice(child),
    }


def may_decide(guardian: Guardian, child: Student) -> bool:
    """Grant and withdraw need parental responsibility (consent_decide checks it again).

    Objecting does not, in law (anyone caring for the child counts as a parent for objecting,
    and the consent rule honours any linked guardian's objection): every linked guardian may
    object, and the pages offer the others only that. From the student's 18th birthday no
    parent decides (the pages say the student is an adult)."""
    return is_responsible(guardian, child) and not is_adult(child, timezone.now())


def children_list(*, guardian: Guardian) -> list[ChildRow]:
    """The guardian's children by name, each with every purpose's status now."""
    loaded = load_for_rule(children_for_guardian(guardian).values("pk"))
    return [
        ChildRow(child=child, statuses=purpose_statuses(child), voice=child_voice(child))
        for child in sorted(loaded.values(), key=lambda c: c.name)
    ]


def decision_record(
    *,
    guardian: Guardian,
    child: Student,
    purpose_code: str,
    decision: str,
    notice_version: int | None,
    method: str,
    ip: str,
    user_agent: str,
    language: str = "",
) -> DecisionRecorded:
    """Grant, withdraw or object for the purpose with this code.

    1. Http404 unless the child is this guardian's; ConsentError unless the school has the
       purpose (consent_decide refuses the rest: no responsibility, a stale notice…).
    2. Record the decision.
    3. Tell the parent the purpose's status the decision left (from the decision's own
       outcome) and any open erasure (a withdrawal that ends the last active purpose starts one).
    """
    _check_own(guardian, child)
    purpose = purpose_get(school=child.school, code=purpose_code)
    outcome = consent_decide(
        student=child,
        purpose=purpose,
        guardian=guardian,
        decision=decision,
        notice_version=notice_version,
        method=method,
        ip=ip,
        user_agent=user_agent,
        language=language,
    )
    return DecisionRecorded(
        record=outcome.record,
        status=outcome.status_of(purpose.code),
        erasure=erasure_get_open(student=child),
    )


def template_shown(
    *, guardian: Guardian, child: Student, template_id: uuid.UUID | str, via: Via
) -> ShownTemplate:
    """One of the child's face templates with its numbers decrypted; the look is logged."""
    responsible_check(guardian, child)
    template = get_object_or_404(
        FaceTemplate,
        pk=_uuid(template_id),
        student=child,
        student__in=children_for_guardian(guardian),
    )
    embedding = template_embedding(template)
    _looked(guardian, child, "biometrics.template_viewed", template=template.pk, via=via)
    return ShownTemplate(template=template, embedding=embedding)


def _looked(
    guardian: Guardian, child: Student, action: str, *, via: Via, **item: uuid.UUID
) -> None:
    """Log a look at the child's biometric data: the parent sees it in "who looked"."""
    data = {key: str(pk) for key, pk in item.items()}
    access_record(
        student=child, actor=Actor.guardian(guardian), action=action, data={**data, "via": via}
    )


def photo_shown(
    *,
    guardian: Guardian,
    child: Student,
    photo_id: uuid.UUID | str,
    via: Via,
    enrolled_only: bool = False,
) -> ShownPhoto:
    """One of the child's enrolment photos, decrypted; the look is logged. `enrolled_only`:
    a photo the faces worker has not yet checked is a 404 (for a page that decodes it)."""
    responsible_check(guardian, child)
    statuses = [PhotoStatus.ENROLLED] if enrolled_only else VIEWABLE_PHOTOS
    photo = get_object_or_404(
        Photo,
        pk=_uuid(photo_id),
        student=child,
        student__in=children_for_guardian(guardian),
        status__in=statuses,
    )
    data = photo_bytes(photo)
    _looked(guardian, child, "biometrics.photo_viewed", photo=photo.pk, via=via)
    return ShownPhoto(photo=photo, data=data)


def consent_receipt_get(
    *, guardian: Guardian, child: Student, receipt_id: uuid.UUID | str
) -> Receipt:
    """The receipt of one decision about the child, whoever made it (all are shown to each)."""
    record = get_object_or_404(
        ConsentDecision,
        student=child,
        student__in=children_for_guardian(guardian),
        receipt_id=_uuid(receipt_id),
    )
    return Receipt(body=record.receipt, filename=f"consent-receipt-{record.receipt_id}.json")


def erasure_ask(*, guardian: Guardian, child: Student, ip: str, user_agent: str) -> ErasureRequest:
    """ "Delete everything" about the child, everywhere: responsible guardians only, and not
    once the student is an adult (AdultStudent: only the student decides then)."""
    responsible_check(guardian, child)
    if is_adult(child, timezone.now()):
        raise AdultStudent
    return erasure_request_by_parent(student=child, guardian=guardian, ip=ip, user_agent=user_agent)


def erasure_get(*, guardian: Guardian, erasure_id: uuid.UUID | str) -> ErasureRequest:
    """An erasure of one of the guardian's children, with its steps: responsible only."""
    erasure = erasure_for_guardian(guardian, erasure_id)
    responsible_check(guardian, erasure.student)
    return erasure


def erasure_receipt_get(*, guardian: Guardian, erasure_id: uuid.UUID | str) -> Receipt:
    """The signed deletion receipt; ErasureNotFinished until every system is verified."""
    erasure = erasure_get(guardian=guardian, erasure_id=erasure_id)
    if erasure.status != ErasureStatus.VERIFIED:
        raise ErasureNotFinished
    return Receipt(body=signed_receipt(erasure), filename=f"erasure-receipt-{erasure.pk}.json")


def export_ask(*, guardian: Guardian, child: Student, language: str = "") -> Export:
    """Ask for the package of everything held about the child: responsible only."""
    responsible_check(guardian, child)
    return export_request(student=child, guardian=guardian, language=language)


def export_get(*, guardian: Guardian, export_id: uuid.UUID | str) -> Export:
    """The guardian's own export, if they are still linked to the child with responsibility
    now (an export built before they were unlinked is not theirs any more: Http404)."""
    export = export_for_guardian(guardian, export_id)
    responsible_check(guardian, export.student)
    return export


def export_download(*, guardian: Guardian, export_id: uuid.UUID | str) -> StreamingHttpResponse:
    """The ZIP, streamed: every check made again at this moment (link, responsibility,
    expiry); ExportGone once expired, ExportNotReady while it is being built."""
    export = export_get(guardian=guardian, export_id=export_id)
    if export.status == Export.Status.EXPIRED:
        raise ExportGone(export)
    if export.status != Export.Status.READY:
        raise ExportNotReady(export)
    return zip_response(export, export_open(export))


def zip_response(export: Export, chunks: Iterable[bytes]) -> StreamingHttpResponse:
    """The export's ZIP streamed to the guardian, never cached (both doors send the same)."""
    response = StreamingHttpResponse(chunks, content_type="application/zip")
    response["Content-Length"] = str(export.size)
    response["Content-Disposition"] = f'attachment; filename="guardian-{export.pk}.zip"'
    response["Cache-Control"] = "no-store, private"
    return response


def _check_own(guardian: Guardian, child: Student) -> None:
    if not children_for_guardian(guardian).filter(pk=child.pk).exists():
        raise Http404


def _uuid(value: uuid.UUID | str) -> uuid.UUID:
    # The page's ?show= is free text; a malformed id is simply not found.
    try:
        return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))
    except ValueError:
        raise Http404 from None
