"""The consent rule (SPEC §2): which purposes are active for a child at a moment, and why not.

This is the only place the rule is decided. Enrolment, identification, the parent pages, the
export and the retention jobs all call `purpose_statuses` / `active_purpose_codes`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Prefetch
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from .models import ConsentDecision, Decision, Guardianship, Purpose, Student, StudentStatus

ACTIVE = "active"
INACTIVE = "inactive"

# Reason codes, in the order they are checked; the first that applies is reported.
REASONS = {
    "active": _("Active: a parent gave consent and nobody has objected."),
    "purpose_disabled": _("The school does not use biometrics for this."),
    "purpose_not_configured": _(
        "The school has not published a notice, an alternative and a DPIA for this."
    ),
    "leaver": _("Your child has left the school."),
    "child_refused": _("Your child has said no. Nobody can override that."),
    "guardian_withdrew": _("A parent withdrew consent."),
    "guardian_objected": _("A parent objected."),
    "guardian_not_notified": _("Not every parent has been told yet, so it cannot start."),
    "notice_changed": _("The notice has changed since consent was given; fresh consent is needed."),
    "expired": _("Consent has expired; it must be given again."),
    "no_consent": _("No parent has given consent. Without it, nothing is collected."),
}


@dataclass(frozen=True)
class PurposeStatus:
    purpose: Purpose
    active: bool
    reason: str
    expires_at: datetime | None = None

    @property
    def code(self) -> str:
        return self.purpose.code

    @property
    def status(self) -> str:
        return ACTIVE if self.active else INACTIVE

    @property
    def reason_text(self) -> str:
        return str(REASONS[self.reason])


def _latest(decisions, at: datetime) -> dict:
    """Each author's latest decision at or before `at`, keyed by (guardian id, purpose id)."""
    latest: dict = {}
    for d in sorted(decisions, key=lambda d: (d.at, d.pk)):
        if d.at <= at:
            latest[(d.guardian_id, d.purpose_id)] = d
    return latest


def load_for_rule(student_ids) -> dict:
    """Everything the rule reads for a set of students, in a fixed number of queries."""
    students = (
        Student.objects.filter(pk__in=student_ids)
        .select_related("school")
        .prefetch_related(
            Prefetch(
                "school__purposes",
                queryset=Purpose.objects.prefetch_related("notices").order_by("code"),
            ),
            Prefetch(
                "guardianships",
                queryset=Guardianship.objects.prefetch_related(
                    "notifications", "notification_exceptions"
                ),
            ),
            Prefetch("decisions", queryset=ConsentDecision.objects.order_by("at", "id")),
        )
    )
    return {s.pk: s for s in students}


def purpose_statuses(
    student: Student, *, at: datetime | None = None, decisions=None
) -> list[PurposeStatus]:
    """The status of every purpose of the child's school for this child at time `at`.

    Pass a student from `load_for_rule` (or any student; missing prefetches are queried).
    `decisions` replaces the child's stored decisions (to ask "what if this one were added").
    """
    at = at or timezone.now()
    school = student.school
    validity = timedelta(days=school.consent_validity_days)
    guardianships = list(student.guardianships.all())
    responsible = [g for g in guardianships if g.parental_responsibility]
    if decisions is None:
        decisions = student.decisions.all()
    decisions = sorted((d for d in decisions if d.at <= at), key=lambda d: (d.at, d.pk))
    latest = _latest(decisions, at)

    # Child's refusal: the child's latest word for a purpose or for all purposes (purpose null).
    child_words = [
        d
        for d in decisions
        if d.guardian_id is None
        and d.decision in (Decision.CHILD_REFUSAL, Decision.CHILD_REFUSAL_LIFTED)
    ]

    def notified(g: Guardianship) -> bool:
        return any(n.sent_at <= at for n in g.notifications.all()) or any(
            e.recorded_at <= at for e in g.notification_exceptions.all()
        )

    everyone_notified = bool(responsible) and all(notified(g) for g in responsible)
    on_roll = student.status == StudentStatus.ON_ROLL or (
        student.left_on is not None and student.left_on > at
    )

    result = []
    for purpose in school.purposes.all():
        notice = purpose.current_notice
        refusal = [d for d in child_words if d.purpose_id in (None, purpose.pk)]
        child_refused = bool(refusal) and refusal[-1].decision == Decision.CHILD_REFUSAL
        guardian_latest = [
            latest[(g.guardian_id, purpose.pk)]
            for g in guardianships
            if (g.guardian_id, purpose.pk) in latest
        ]
        grants = [
            d
            for d in guardian_latest
            if d.decision == Decision.GRANT
            and any(g.guardian_id == d.guardian_id for g in responsible)
        ]
        current_grants = [d for d in grants if notice and d.notice_version == notice.version]
        live_grants = [d for d in current_grants if d.at + validity > at]

        if not purpose.enabled:
            reason = "purpose_disabled"
        elif purpose.enablement_problems():
            reason = "purpose_not_configured"
        elif not on_roll:
            reason = "leaver"
        elif child_refused:
            reason = "child_refused"
        elif any(d.decision == Decision.WITHDRAW for d in guardian_latest):
            reason = "guardian_withdrew"
        elif any(d.decision == Decision.OBJECT for d in guardian_latest):
            reason = "guardian_objected"
        elif not everyone_notified:
            reason = "guardian_not_notified"
        elif live_grants:
            reason = "active"
        elif current_grants:
            reason = "expired"
        elif grants:
            reason = "notice_changed"
        else:
            reason = "no_consent"
        expires_at = max(d.at for d in live_grants) + validity if live_grants else None
        result.append(PurposeStatus(purpose, reason == "active", reason, expires_at))
    return result


def active_purpose_codes(
    student: Student, *, at: datetime | None = None, decisions=None
) -> set[str]:
    return {s.code for s in purpose_statuses(student, at=at, decisions=decisions) if s.active}


def is_purpose_active(student: Student, code: str, *, at: datetime | None = None) -> bool:
    return code in active_purpose_codes(student, at=at)
