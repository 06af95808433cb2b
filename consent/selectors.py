"""Reads scoped by the requester: a guardian's own children, a school's own purposes."""

from __future__ import annotations

from datetime import datetime

from django.core.management.base import CommandError
from django.db.models import QuerySet
from django.utils import timezone

from .ages import adult_since, is_adult, is_competent
from .compiled import CompiledQuery
from .errors import PURPOSE_UNKNOWN, ConsentError
from .models import ConsentDecision, Decision, Guardian, Method, Purpose, School, Student
from .rules import PurposeStatus, load_for_rule, purpose_statuses
from .services import child_refusal_standing
from .texts import notice_shown, purpose_words


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


CODE_MAX = Purpose._meta.get_field("code").max_length or 50


# Asked by every identification: the SQL is built once (consent.compiled).
_purpose_by_code = CompiledQuery(
    lambda school, code: Purpose.objects.filter(school_id=school, code=code),
    school=Purpose._meta.get_field("school"),
    code=Purpose._meta.get_field("code"),
)


def purpose_get(*, school: School, code: str) -> Purpose:
    """The school's purpose with this code; ConsentError("unknown_purpose") if it has none (or
    the code could be none: too long, or with a NUL, which PostgreSQL cannot even compare)."""
    if len(code) > CODE_MAX or "\x00" in code:
        raise ConsentError("unknown_purpose", PURPOSE_UNKNOWN)
    purpose = next(iter(_purpose_by_code(school=school.pk, code=code)), None)
    if purpose is None:
        raise ConsentError("unknown_purpose", PURPOSE_UNKNOWN)
    return purpose


def consent_overview(student: Student, *, viewer: Guardian | None = None) -> list[dict]:
    """Per purpose: status and reason, the current notice, and every decision (newest first)."""
    loaded = load_for_rule([student.pk])[student.pk]
    return purpose_rows(loaded, purpose_statuses(loaded), viewer_id=viewer.pk if viewer else None)


def _is_viewers(d: ConsentDecision, viewer_id: int | None, viewer_child: bool) -> bool:
    """A decision the viewer made: the guardian's own, or (for the student viewing their own
    page) the student's own grant or withdrawal."""
    if viewer_child:
        return d.guardian_id is None and d.decision in (Decision.GRANT, Decision.WITHDRAW)
    return bool(viewer_id) and d.guardian_id == viewer_id


def purpose_rows(
    loaded: Student,
    statuses: list[PurposeStatus],
    *,
    viewer_id: int | None,
    viewer_child: bool = False,
) -> list[dict]:
    """consent_overview's rows for a student already loaded for the rule, with its statuses.
    `viewer_child`: seen by the student on their own page (their decisions are "you")."""
    decisions = sorted(loaded.decisions.all(), key=lambda d: (d.at, d.pk), reverse=True)
    rows = []
    for status in statuses:
        purpose = status.purpose
        notice = purpose.current_notice
        # The school's texts in the active language (the school's default where it has none).
        words = purpose_words(purpose)
        shown = notice_shown(notice) if notice else None
        mine = next(
            (
                d
                for d in decisions
                if d.purpose_id == purpose.pk and _is_viewers(d, viewer_id, viewer_child)
            ),
            None,
        )
        rows.append(
            {
                "code": purpose.code,
                "name": words.name,
                "description": words.description,
                "language": words.language,
                "status": status.status,
                "reason": status.reason_text,
                "reason_code": status.reason,
                "alternative": words.alternative,
                "dpia_reference": purpose.dpia_reference,
                "notice_version": shown.version if shown else None,
                "notice_language": shown.language if shown else "",
                "notice_sha256": shown.sha256 if shown else "",
                "notice_text": shown.text if shown else "",
                "expires_at": status.expires_at,
                "my_decision": mine.decision if mine else None,
                "i_granted": bool(
                    mine
                    and mine.decision == Decision.GRANT
                    and notice
                    and mine.notice_version == notice.version
                ),
                "decisions": [
                    decision_row(d, viewer_id=viewer_id, viewer_child=viewer_child)
                    for d in decisions
                    if d.purpose_id in (purpose.pk, None)
                ],
            }
        )
    return rows


def consent_decisions(
    loaded: Student, *, viewer_id: int | None, viewer_child: bool = False
) -> list[dict]:
    """Every decision about a student loaded for the rule, oldest first, with its purpose's code
    ("all" for a decision about every purpose, such as the child's own refusal)."""
    codes = {purpose.pk: purpose.code for purpose in loaded.school.purposes.all()}
    return [
        {
            "purpose": codes[d.purpose_id] if d.purpose_id else "all",
            **decision_row(d, viewer_id=viewer_id, viewer_child=viewer_child),
        }
        for d in sorted(loaded.decisions.all(), key=lambda d: (d.at, d.pk))
    ]


def decision_row(
    decision: ConsentDecision, *, viewer_id: int | None, viewer_child: bool = False
) -> dict:
    """One decision as a parent (or the child, `viewer_child`) is shown it; `by` says who
    decided, seen from the viewer: "you", "child", "another_guardian" for a parent; "you",
    "parent" for the child. `by_staff`: the child's word as staff recorded it."""
    if decision.guardian_id is None:
        by = "you" if viewer_child else "child"
    elif viewer_child:
        by = "parent"
    elif viewer_id and decision.guardian_id == viewer_id:
        by = "you"
    else:
        by = "another_guardian"
    return {
        "at": decision.at,
        "decision": decision.decision,
        "by": by,
        "by_staff": decision.guardian_id is None
        and decision.method in (Method.STAFF, Method.PAPER),
        "method": decision.method,
        "notice_version": decision.notice_version,
        "receipt_id": decision.receipt_id,
    }


def child_voice(student: Student, *, at: datetime | None = None) -> dict:
    """What the child has said for themselves, as their page and their parents' pages show it:
    whether their refusal stands (`refusal`), since when, and whether staff recorded it for
    them; whether they are at or above the school's competence age (`competent`, so they have
    their own page); whether they are an adult now (`adult`: only their own consent counts)."""
    at = at or timezone.now()
    standing = child_refusal_standing(student, at=at)
    turned_18 = adult_since(student)
    return {
        "refusal": standing is not None,
        "refusal_at": standing.at if standing else None,
        "refusal_by_staff": bool(standing and standing.method in (Method.STAFF, Method.PAPER)),
        "competent": is_competent(student, at),
        "competence_age": student.school.competence_age,
        "adult": is_adult(student, at),
        "adult_since": turned_18.date() if turned_18 and turned_18 <= at else None,
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
