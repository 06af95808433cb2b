"""The parent's use cases, one function per action, shared by the web pages and the JSON API.

Each takes the signed-in guardian and scopes its reads by it: another guardian's child (or that
child's template, photo, receipt or erasure) is Http404 here, whichever door asked. The pages
(`portal/views.py`) and the API (`portal/api/`) only parse their input, call one of these, and
render or serialise what it returns; neither imports the other.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

import numpy as np
from django.http import Http404, StreamingHttpResponse
from django.shortcuts import get_object_or_404

from biometrics.access import access_record
from biometrics.models import ErasureRequest, ErasureStatus, FaceTemplate, Photo, PhotoStatus
from biometrics.receipts import signed_receipt
from biometrics.selectors import (
    erasure_for_guardian,
    erasure_get_open,
    photo_bytes,
    template_embedding,
)
from consent.actors import Actor
from consent.models import ConsentDecision, Guardian, Student
from consent.rules import PurposeStatus, load_for_rule, purpose_statuses
from consent.selectors import child_for_guardian, children_for_guardian, purpose_get
from consent.services import consent_decide

from .models import Export

# Which door a look came through; the access log records it.
Via = Literal["web", "api"]

# A rejected or erased photo is no longer the parent's to look at.
VIEWABLE_PHOTOS = [PhotoStatus.PENDING, PhotoStatus.ENROLLED]


class ErasureNotFinished(Exception):
    """The deletion receipt exists only once every system has verified its erasure."""


@dataclass(frozen=True)
class ChildRow:
    child: Student
    statuses: list[PurposeStatus]


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


def child_get(*, guardian: Guardian, child_id: uuid.UUID | str) -> Student:
    """The guardian's own child; Http404 for anyone else's (or no one's)."""
    try:
        return child_for_guardian(guardian, child_id)
    except Student.DoesNotExist:
        raise Http404 from None


def children_list(*, guardian: Guardian) -> list[ChildRow]:
    """The guardian's children by name, each with every purpose's status now."""
    loaded = load_for_rule(children_for_guardian(guardian).values("pk"))
    return [
        ChildRow(child=child, statuses=purpose_statuses(child))
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
    *, guardian: Guardian, child: Student, photo_id: uuid.UUID | str, via: Via
) -> ShownPhoto:
    """One of the child's enrolment photos, decrypted; the look is logged."""
    photo = get_object_or_404(
        Photo,
        pk=_uuid(photo_id),
        student=child,
        student__in=children_for_guardian(guardian),
        status__in=VIEWABLE_PHOTOS,
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


def erasure_receipt_get(*, guardian: Guardian, erasure_id: uuid.UUID | str) -> Receipt:
    """The signed deletion receipt; ErasureNotFinished until every system is verified."""
    erasure = erasure_for_guardian(guardian, erasure_id)
    if erasure.status != ErasureStatus.VERIFIED:
        raise ErasureNotFinished
    return Receipt(body=signed_receipt(erasure), filename=f"erasure-receipt-{erasure.pk}.json")


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
