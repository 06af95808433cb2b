"""What starts or ends a child's purposes: a guardian's grant, withdrawal or objection, the
child's own refusal, and leaving the school."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from ..actors import Actor
from ..ages import is_adult, is_competent
from ..audit import audit_batch, audit_record
from ..errors import (
    ADULT_STUDENT,
    BELOW_COMPETENCE_AGE,
    NO_DATE_OF_BIRTH,
    NOT_ADULT,
    NOT_YOUR_CHILD,
    PURPOSE_UNKNOWN,
    STALE_NOTICE,
    ConsentError,
)
from ..identifiers import hash_identifier
from ..models import (
    ConsentDecision,
    Decision,
    Guardian,
    Method,
    Purpose,
    Student,
    StudentStatus,
)
from ..rules import (
    PurposeStatus,
    active_purpose_codes,
    decision_loaded,
    load_for_rule,
    purpose_statuses,
)
from ..signals import purposes_changed
from ..status import consent_status_refresh
from ..texts import NoticeShown, notice_shown


@dataclass(frozen=True)
class DecisionOutcome:
    """What a decision did, from the rule's data the service loaded once: the record (with its
    receipt), every purpose's status just after it, and the purposes it ended. Callers tell
    the person from this; none has to run the rule again."""

    record: ConsentDecision
    statuses: list[PurposeStatus]
    ended: frozenset[str]

    def status_of(self, code: str) -> PurposeStatus:
        return next(s for s in self.statuses if s.code == code)


def consent_decide(
    *,
    student: Student,
    purpose: Purpose,
    guardian: Guardian,
    decision: str,
    notice_version: int | None,
    method: str = Method.WEB,
    ip: str = "",
    user_agent: str = "",
    at: datetime | None = None,
    actor: Actor | None = None,
    language: str = "",
) -> DecisionOutcome:
    """Record one guardian's grant, withdrawal or objection for one purpose.

    1. Check the purpose is the child's school's and the guardian may decide: a grant or a
       withdrawal needs parental responsibility; an objection needs only the link (anyone
       caring for the child counts as a parent for objecting, and any one "no" wins).
    2. From the student's 18th birthday no guardian decides any more (`adult_student`).
    3. A grant must name the current notice version (a stale one is refused). Whatever the
       language of its text (`language`: the one the person read, the active one unless
       given), it is the same version; the decision records that text's language and hash.
    4. Append the decision and its audit event; after commit, tell listeners what ended.
    """
    if decision not in (Decision.GRANT, Decision.WITHDRAW, Decision.OBJECT):
        raise ConsentError("bad_decision", "The decision must be grant, withdraw or object.")
    if purpose.school_id != student.school_id:
        raise ConsentError("unknown_purpose", PURPOSE_UNKNOWN)
    at = at or timezone.now()
    with transaction.atomic():
        # What the rule reads, loaded once: the checks, the decision and its reactions use it.
        loaded = load_for_rule([student.pk], one_by_one=True)[student.pk]
        link = next((g for g in loaded.guardianships.all() if g.guardian_id == guardian.pk), None)
        if link is None or (not link.parental_responsibility and decision != Decision.OBJECT):
            raise ConsentError("not_responsible", NOT_YOUR_CHILD)
        if is_adult(loaded, at):
            raise ConsentError("adult_student", ADULT_STUDENT)
        notice = _current_notice(purpose, decision, notice_version, loaded=loaded)
        shown = notice_shown(notice, language)
        record = _on_notice(loaded, purpose, guardian, decision, shown, method, at, ip, user_agent)
        return _decision_append(record, actor=actor or Actor.guardian(guardian), loaded=loaded)


def _current_notice(
    purpose: Purpose, decision: str, notice_version: int | None, loaded: Student | None = None
):
    """The purpose's newest notice (from `loaded`'s school when given); a grant must name it."""
    if loaded is not None:
        mine = next((p for p in loaded.school.purposes.all() if p.pk == purpose.pk), None)
        notices = list(mine.notices.all()) if mine is not None else []
        notice = max(notices, key=lambda n: n.version, default=None)
    else:
        notice = purpose.notices.order_by("-version").first()
    if notice is None:
        raise ConsentError("no_notice", "This purpose has no notice yet.")
    if decision == Decision.GRANT and notice_version != notice.version:
        raise ConsentError("stale_notice", STALE_NOTICE)
    return notice


def child_refusal_record(
    *,
    student: Student,
    actor: Actor,
    recorded_by=None,
    note: str = "",
    purpose: Purpose | None = None,
    lifted: bool = False,
    method: str = Method.STAFF,
    ip: str = "",
    user_agent: str = "",
    at: datetime | None = None,
) -> DecisionOutcome:
    """Record the child's own refusal (any age, verbal or not; PoFA s.26(5)), for one purpose
    or all, or lift it (`lifted`). Staff record it (method `staff`), or the child says it on
    their own page (`child_refusal_by_child`: method web or API, actor the child). No parent's
    decision can override or lift it."""
    if purpose is not None and purpose.school_id != student.school_id:
        raise ConsentError("unknown_purpose", PURPOSE_UNKNOWN)
    notice = purpose.notices.order_by("-version").first() if purpose else None
    return _decision_append(
        ConsentDecision(
            student=student,
            purpose=purpose,
            guardian=None,
            decision=Decision.CHILD_REFUSAL_LIFTED if lifted else Decision.CHILD_REFUSAL,
            notice_version=notice.version if notice else None,
            notice_sha256=notice.sha256 if notice else "",
            notice_language=notice.language if notice else "",
            method=method,
            at=at or timezone.now(),
            ip_hash=hash_identifier(ip),
            user_agent_hash=hash_identifier(user_agent),
            recorded_by=recorded_by,
            note=note[:2000],
        ),
        actor=actor,
    )


def child_refusal_standing(
    student: Student, *, at: datetime | None = None
) -> ConsentDecision | None:
    """The child's refusal that stands now for some purpose (the newest), or None: the child's
    latest word covering a purpose is a refusal. Staff-typed refusals count too."""
    at = at or timezone.now()
    words = sorted(
        (
            d
            for d in student.decisions.all()
            if d.guardian_id is None
            and d.at <= at
            and d.decision in (Decision.CHILD_REFUSAL, Decision.CHILD_REFUSAL_LIFTED)
        ),
        key=lambda d: (d.at, d.pk),
    )
    standing = None
    for purpose_id in {d.purpose_id for d in words if d.purpose_id is not None} | {None}:
        covering = [d for d in words if d.purpose_id in (None, purpose_id)]
        if covering and covering[-1].decision == Decision.CHILD_REFUSAL:
            if standing is None or (covering[-1].at, covering[-1].pk) > (standing.at, standing.pk):
                standing = covering[-1]
    return standing


def age_check(student: Student, at: datetime) -> None:
    """ConsentError unless the child is at or above the school's competence age at `at`."""
    if student.date_of_birth is None:
        raise ConsentError("no_date_of_birth", NO_DATE_OF_BIRTH)
    if not is_competent(student, at):
        raise ConsentError("below_competence_age", BELOW_COMPETENCE_AGE)


def child_refusal_by_child(
    *,
    student: Student,
    refuse: bool,
    method: str = Method.WEB,
    ip: str = "",
    user_agent: str = "",
    at: datetime | None = None,
) -> DecisionOutcome | None:
    """The child, signed in to their own page, says "I don't want my face used" (`refuse`) or
    "I've changed my mind". Returns the outcome, or None when nothing changes (the child has
    already said so).

    1. The child must be at or above the school's competence age (ConsentError otherwise).
    2. A refusal covers every purpose and wins over every parent. Lifting lifts the child's
       refusal whoever typed it (staff or the child); what parents granted counts again, and
       without a parent's grant nothing is active.
    3. Recorded as the child's own decision (actor: the child, by pseudonym), with a receipt.
    """
    at = at or timezone.now()
    age_check(student, at)
    standing = child_refusal_standing(student, at=at)
    if refuse == (standing is not None):
        return None
    return child_refusal_record(
        student=student,
        actor=Actor.child(student),
        lifted=not refuse,
        method=method,
        ip=ip,
        user_agent=user_agent,
        at=at,
    )


def student_decide(
    *,
    student: Student,
    purpose: Purpose,
    decision: str,
    notice_version: int | None,
    method: str = Method.WEB,
    ip: str = "",
    user_agent: str = "",
    at: datetime | None = None,
    language: str = "",
) -> DecisionOutcome:
    """An adult student's own grant or withdrawal for one purpose (from the 18th birthday only
    this counts). The same checks as a parent's: the school's purpose, the current notice for
    a grant. Recorded with the student as author (no guardian) and a consent receipt."""
    if decision not in (Decision.GRANT, Decision.WITHDRAW):
        raise ConsentError("bad_decision", "The decision must be grant or withdraw.")
    if purpose.school_id != student.school_id:
        raise ConsentError("unknown_purpose", PURPOSE_UNKNOWN)
    at = at or timezone.now()
    if not is_adult(student, at):
        raise ConsentError("not_adult", NOT_ADULT)
    notice = _current_notice(purpose, decision, notice_version)
    shown = notice_shown(notice, language)
    record = _on_notice(student, purpose, None, decision, shown, method, at, ip, user_agent)
    return _decision_append(record, actor=Actor.child(student))


def _on_notice(
    student: Student,
    purpose: Purpose,
    guardian: Guardian | None,
    decision: str,
    notice: NoticeShown,
    method: str,
    at: datetime,
    ip: str,
    user_agent: str,
) -> ConsentDecision:
    """A decision (not saved) on this notice version's text as the person read it (its
    language and SHA-256), with the requester's hashed IP and user agent: a guardian's, or the
    adult student's own (`guardian` None)."""
    return ConsentDecision(
        student=student,
        purpose=purpose,
        guardian=guardian,
        decision=decision,
        notice_version=notice.version,
        notice_sha256=notice.sha256,
        notice_language=notice.language,
        method=method,
        at=at,
        ip_hash=hash_identifier(ip),
        user_agent_hash=hash_identifier(user_agent),
    )


def _decision_append(
    record: ConsentDecision, *, actor: Actor, loaded: Student | None = None
) -> DecisionOutcome:
    """Append a decision with its receipt and audit event; announce purposes that ended.

    1. Load what the rule reads once (or take `loaded`, the caller's, loaded in its
       transaction); work out which purposes were active just before.
    2. Save the decision with its receipt and add it to the loaded rows; the rule over them
       says what is active after (the outcome returned).
    3. Send `purposes_changed` (in the same transaction, with the loaded student: what reacts
       reads the same rows) with what ended and what is left; write the audit events of the
       whole call (this decision's and those of what reacted) in one append to the chain; store
       the statuses from the same rows.
    """
    from ..receipts import receipt_for  # noqa: PLC0415 - receipts import urls, loaded late

    with transaction.atomic():
        with audit_batch():
            pk = record.student_id
            student = loaded or load_for_rule([pk], one_by_one=True)[pk]
            before = active_purpose_codes(student, at=record.at)
            record.student = student
            record.receipt = receipt_for(record)
            record.save()
            decision_loaded(student, record)
            statuses = purpose_statuses(student, at=record.at)
            after = {s.code for s in statuses if s.active}
            audit_record(
                f"consent.{record.decision}",
                actor=actor,
                school_id=student.school_id,
                subject=student.subject_id,
                data={
                    "purpose": record.purpose.code if record.purpose is not None else "all",
                    "notice_version": record.notice_version,
                    "method": record.method,
                    "receipt": str(record.receipt_id),
                },
                at=record.at,
            )
            if after != before:
                # Inside the transaction: what reacts (an erasure request) commits with the
                # decision or not at all, so a crash in between can never lose it.
                purposes_changed.send(
                    sender=ConsentDecision,
                    student=student,
                    ended=before - after,
                    still_active=after,
                    at=record.at,
                    loaded=True,
                )
        consent_status_refresh([student.pk], loaded={student.pk: student})
    return DecisionOutcome(record=record, statuses=statuses, ended=frozenset(before - after))


def student_leave(*, student: Student, actor: Actor, at: datetime | None = None) -> Student:
    """Mark a leaver: every purpose stops at once, and the leaver clock starts."""
    at = at or timezone.now()
    with transaction.atomic():
        before = active_purpose_codes(student, at=at)
        updated = Student.objects.filter(pk=student.pk, status=StudentStatus.ON_ROLL).update(
            status=StudentStatus.LEAVER, left_on=at
        )
        student.refresh_from_db()
        if updated:
            audit_record(
                "roster.student_left",
                actor=actor,
                school_id=student.school_id,
                subject=student.subject_id,
                at=at,
            )
            purposes_changed.send(
                sender=Student, student=student, ended=before, still_active=set(), at=at
            )
        consent_status_refresh([student.pk])
    return student
