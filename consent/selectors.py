"""Reads scoped by the requester: a guardian's own children, a school's own purposes."""

from __future__ import annotations

from django.core.management.base import CommandError
from django.db.models import QuerySet

from .models import Decision, Guardian, Purpose, School, Student
from .rules import load_for_rule, purpose_statuses
from .services import PURPOSE_UNKNOWN, ConsentError


def children_for_guardian(guardian: Guardian) -> QuerySet[Student]:
    return (
        Student.objects.filter(guardianships__guardian=guardian)
        .select_related("school")
        .order_by("name")
        .distinct()
    )


def child_for_guardian(guardian: Guardian, child_id) -> Student:
    """The child if this guardian is linked to it; Student.DoesNotExist (→ 404) otherwise."""
    return children_for_guardian(guardian).get(pk=child_id)


def purpose_get(*, school: School, code: str) -> Purpose:
    """The school's purpose with this code; ConsentError("unknown_purpose") if it has none."""
    purpose = Purpose.objects.filter(school=school, code=code).first()
    if purpose is None:
        raise ConsentError("unknown_purpose", PURPOSE_UNKNOWN)
    return purpose


def consent_overview(student: Student, *, viewer: Guardian | None = None) -> list[dict]:
    """Per purpose: status and reason, the current notice, and every decision (newest first)."""
    loaded = load_for_rule([student.pk])[student.pk]
    decisions = sorted(loaded.decisions.all(), key=lambda d: (d.at, d.pk), reverse=True)
    rows = []
    for status in purpose_statuses(loaded):
        purpose = status.purpose
        notice = purpose.current_notice
        mine = next(
            (
                d
                for d in decisions
                if viewer and d.guardian_id == viewer.pk and d.purpose_id == purpose.pk
            ),
            None,
        )
        rows.append(
            {
                "code": purpose.code,
                "name": purpose.name,
                "description": purpose.description,
                "status": status.status,
                "reason": status.reason_text,
                "reason_code": status.reason,
                "alternative": purpose.alternative,
                "dpia_reference": purpose.dpia_reference,
                "notice_version": notice.version if notice else None,
                "notice_sha256": notice.sha256 if notice else "",
                "notice_text": notice.text if notice else "",
                "expires_at": status.expires_at,
                "my_decision": mine.decision if mine else None,
                "i_granted": bool(
                    mine
                    and mine.decision == Decision.GRANT
                    and notice
                    and mine.notice_version == notice.version
                ),
                "decisions": [
                    _decision_row(d, viewer)
                    for d in decisions
                    if d.purpose_id in (purpose.pk, None)
                ],
            }
        )
    return rows


def _decision_row(decision, viewer) -> dict:
    if decision.guardian_id is None:
        by = "child"
    elif viewer and decision.guardian_id == viewer.pk:
        by = "you"
    else:
        by = "another_guardian"
    return {
        "at": decision.at,
        "decision": decision.decision,
        "by": by,
        "method": decision.method,
        "notice_version": decision.notice_version,
        "receipt_id": decision.receipt_id,
    }


def school_from_option(slug: str | None):
    """The school a management command acts on: --school SLUG, or the only school there is."""
    if slug:
        found = School.objects.filter(slug=slug).first()
        if found is None:
            raise CommandError(f"No school has the slug {slug!r}")
        return found
    schools = list(School.objects.all()[:2])
    if len(schools) == 1:
        return schools[0]
    known = ", ".join(School.objects.values_list("slug", flat=True)) or "none"
    raise CommandError(f"Name the school with --school (known: {known})")
