"""The child's use cases (SPEC §2 rule 5, §8 `/me/`), shared by the child's page
(`portal/child_views.py`) and the JSON API (`portal/api/me.py`).

Each takes the signed-in child (`portal.child_auth.student_for_user`: only a child's own
account, only at or above the school's competence age) and reads or writes that child alone:
there is no child id in any of these, so no other child can be named. What the child sees is
the same held-data document their parents see, with the child's own decisions and looks as
"you".

- "I don't want my face used" records the child's refusal, which wins over every parent; "I've
  changed my mind" lifts it, whoever typed it (consent.services.child_refusal_by_child). What
  parents granted counts again; without a parent's grant nothing is active.
- From the 18th birthday the student decides alone: their own grant or withdrawal per purpose,
  on the current notice, with a consent receipt (consent.services.student_decide).
- The child may download everything, in their language: a package of their own, which only
  they can download (a parent's package is the parent's).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta

from django.http import StreamingHttpResponse
from django.shortcuts import get_object_or_404
from django.utils import timezone

from biometrics.access import access_record
from biometrics.models import ErasureRequest
from biometrics.selectors import erasure_get_open, held_data
from consent.actors import Actor
from consent.models import AuditEvent, ConsentDecision, Student
from consent.selectors import child_voice, purpose_get
from consent.services import DecisionOutcome, child_refusal_by_child, student_decide

from .exports import export_for_child, export_open, export_request
from .models import Export
from .parent import ExportGone, ExportNotReady, Receipt, zip_response

# The child's look at their own page is logged (their parents see "the child looked"), once
# in this long: a child refreshing their page does not push the other looks out of the log.
LOOK_LOGGED_EVERY = timedelta(minutes=15)
LOOKED = "biometrics.held_data_viewed"


@dataclass(frozen=True)
class RefusalRecorded:
    refusal: bool  # the child's refusal stands now
    changed: bool  # this request changed it (False: the child had said so already)
    outcome: DecisionOutcome | None
    erasure: ErasureRequest | None  # the child's open erasure, if nothing is active any more


@dataclass(frozen=True)
class StudentDecisionRecorded:
    outcome: DecisionOutcome
    erasure: ErasureRequest | None

    @property
    def record(self) -> ConsentDecision:
        return self.outcome.record


def me_document(*, child: Student) -> dict:
    """Everything held about the child, seen by the child, with what they said themselves
    (`voice`) and `refusal`; the look is logged."""
    document = held_data(child, viewer_child=True, voice=True)
    _looked(child)
    return {**document, "refusal": document["voice"]["refusal"]}


def _looked(child: Student) -> None:
    recent = AuditEvent.objects.filter(
        subject=str(child.subject_id),
        action=LOOKED,
        actor_kind="child",
        at__gt=timezone.now() - LOOK_LOGGED_EVERY,
    )
    if not recent.exists():
        access_record(student=child, actor=Actor.child(child), action=LOOKED)


def refusal_set(
    *, child: Student, refuse: bool, method: str, ip: str, user_agent: str
) -> RefusalRecorded:
    """ "I don't want my face used" (`refuse`) or "I've changed my mind"."""
    outcome = child_refusal_by_child(
        student=child, refuse=refuse, method=method, ip=ip, user_agent=user_agent
    )
    return RefusalRecorded(
        refusal=child_voice(child)["refusal"],
        changed=outcome is not None,
        outcome=outcome,
        erasure=erasure_get_open(student=child),
    )


def student_decision_record(
    *,
    child: Student,
    purpose_code: str,
    decision: str,
    notice_version: int | None,
    method: str,
    ip: str,
    user_agent: str,
    language: str = "",
) -> StudentDecisionRecorded:
    """An adult student's own grant or withdrawal for one purpose (ConsentError below 18, for
    another school's purpose, or on a notice that is not the current one)."""
    purpose = purpose_get(school=child.school, code=purpose_code)
    outcome = student_decide(
        student=child,
        purpose=purpose,
        decision=decision,
        notice_version=notice_version,
        method=method,
        ip=ip,
        user_agent=user_agent,
        language=language,
    )
    return StudentDecisionRecorded(outcome=outcome, erasure=erasure_get_open(student=child))


def child_receipt_get(*, child: Student, receipt_id: uuid.UUID | str) -> Receipt:
    """The receipt of one decision about the child, whoever made it."""
    record = get_object_or_404(ConsentDecision, student=child, receipt_id=receipt_id)
    return Receipt(body=record.receipt, filename=f"consent-receipt-{record.receipt_id}.json")


def child_export_ask(*, child: Student, language: str) -> Export:
    """The child's own package of everything held about them, in their language."""
    return export_request(student=child, by_child=True, language=language)


def child_export_get(*, child: Student, export_id: uuid.UUID | str) -> Export:
    """One of the child's own packages (a parent's is not theirs: Http404)."""
    return export_for_child(child, export_id)


def child_export_download(*, child: Student, export_id: uuid.UUID | str) -> StreamingHttpResponse:
    """The ZIP, streamed to the child who asked for it; ExportGone once expired,
    ExportNotReady while it is being built."""
    export = child_export_get(child=child, export_id=export_id)
    if export.status == Export.Status.EXPIRED:
        raise ExportGone(export)
    if export.status != Export.Status.READY:
        raise ExportNotReady(export)
    return zip_response(export, export_open(export))
