"""The consent rule (docs/consent-rule.md): which purposes are active for a child at a moment,
and why not.

This is the only place the rule is decided. Enrolment, identification, the parent pages, the
export and the retention jobs all call `purpose_statuses` / `active_purpose_codes`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Prefetch
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from .ages import adult_since
from .compiled import CompiledQuery, run_together
from .models import (
    ConsentDecision,
    Decision,
    Guardianship,
    Notice,
    NoticeText,
    Notification,
    NotificationException,
    Purpose,
    PurposeText,
    School,
    Student,
    StudentStatus,
)

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
    "student_withdrew": _("The student, now an adult, withdrew their consent."),
    "adult_student": _(
        "The student is now an adult: only their own consent counts, not a parent's."
    ),
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


def load_for_rule(student_ids, *, rule_only: bool = False, one_by_one: bool = False) -> dict:
    """Everything the rule reads for a set of students, in a fixed number of queries.

    One student (a page, a decision; or `one_by_one`, a student at a time) is loaded through
    SQL compiled once per process (consent.compiled), its ten statements in one round trip on
    PostgreSQL: the same rows, every column and the texts, as the prefetching loader below
    reads for many. `rule_only=True` (identification, once per candidate) loads the rows the
    rule reads, only the columns it reads (eight statements). Building the queries, not
    running them, was most of a single student's loading time.
    """
    one = isinstance(student_ids, list | tuple | set) and len(student_ids) == 1
    if rule_only or one_by_one or one:
        # One student (a page, a decision): the same rows as below, in one round trip.
        return _load_compiled(list(student_ids), every_column=not rule_only)
    students = (
        Student.objects.filter(pk__in=student_ids)
        .select_related("school")
        .prefetch_related(
            Prefetch(
                "school__purposes",
                queryset=Purpose.objects.prefetch_related("notices__texts", "texts").order_by(
                    "code"
                ),
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


# What the rule reads, per model: (model, columns, the filter on one student, order).
# Every filter takes the student's id as its only parameter; the order is the default loader's
# where the rule's result depends on it (purposes are reported in code order).
_RULE_ONLY = {
    "student": (Student, ("id", "school_id", "status", "left_on", "date_of_birth"), "pk", ()),
    "school": (School, ("id", "consent_validity_days"), "students__pk", ()),
    "purposes": (
        Purpose,
        ("id", "school_id", "code", "enabled", "alternative", "dpia_reference"),
        "school__students__pk",
        ("code",),
    ),
    "notices": (Notice, ("id", "purpose_id", "version"), "purpose__school__students__pk", ()),
    "guardianships": (
        Guardianship,
        ("id", "student_id", "guardian_id", "parental_responsibility"),
        "student_id",
        (),
    ),
    "notifications": (
        Notification,
        ("id", "guardianship_id", "sent_at"),
        "guardianship__student_id",
        (),
    ),
    "notification_exceptions": (
        NotificationException,
        ("id", "guardianship_id", "recorded_at"),
        "guardianship__student_id",
        (),
    ),
    "decisions": (
        ConsentDecision,
        ("id", "student_id", "purpose_id", "guardian_id", "decision", "notice_version", "at"),
        "student_id",
        ("at", "id"),
    ),
}


# With every column, also the texts the default loader prefetches (pages show them).
_TEXTS = {
    "purpose_texts": (PurposeText, (), "purpose__school__students__pk", ()),
    "notice_texts": (NoticeText, (), "notice__purpose__school__students__pk", ()),
}


def _rule_query(model, columns, lookup: str, order, every_column: bool) -> CompiledQuery:
    def build(student):
        qs = model._base_manager.filter(**{lookup: student})
        if not every_column:
            return qs.order_by(*order).only(*columns)
        # Every column: in the default loader's order (the model's own where it sets none).
        return qs.order_by(*order) if order else qs.order_by(*model._meta.ordering)

    return CompiledQuery(build, student=Student._meta.pk)


_COMPILED = {
    False: {name: _rule_query(*spec, every_column=False) for name, spec in _RULE_ONLY.items()},
    True: {
        name: _rule_query(*spec, every_column=True)
        for name, spec in {**_RULE_ONLY, **_TEXTS}.items()
    },
}


def _prefetched(instance, name: str, objects: list) -> None:
    """Hand `objects` to `instance.<name>.all()`, as prefetch_related does."""
    qs = getattr(instance, name).model._base_manager.all()
    qs._result_cache = objects
    qs._prefetch_done = True
    if not hasattr(instance, "_prefetched_objects_cache"):
        instance._prefetched_objects_cache = {}
    instance._prefetched_objects_cache[name] = qs


def _texts_prefetched(owners: list, texts: list, owner_id: str) -> None:
    by_owner: dict = {}
    for text in texts:
        by_owner.setdefault(getattr(text, owner_id), []).append(text)
    for owner in owners:
        _prefetched(owner, "texts", by_owner.get(owner.pk, []))


def decision_loaded(student: Student, record: ConsentDecision) -> None:
    """A decision just saved, added to a student from `load_for_rule` as if loaded with it: the
    status refresh and the erasure's dues read the same rows without loading them again."""
    decisions = [*student.decisions.all(), record]
    _prefetched(student, "decisions", sorted(decisions, key=lambda d: (d.at, str(d.pk))))


def _load_compiled(student_ids: list, *, every_column: bool) -> dict:
    result = {}
    for student_id in student_ids:
        found = run_together(*rule_calls(student_id, every_column=every_column))
        student = rule_loaded(found, every_column=every_column)
        if student is not None:
            result[student.pk] = student
    return result


def rule_calls(student_id, *, every_column: bool = True) -> list[tuple[CompiledQuery, dict]]:
    """The compiled queries that load one student for the rule (see `load_for_rule`), for a
    caller that runs them with its own in one round trip (`run_together`); `rule_loaded`
    makes the student of their results."""
    return [(query, {"student": student_id}) for query in _COMPILED[every_column].values()]


def rule_loaded(found: list[list], *, every_column: bool = True) -> Student | None:
    """The student of `rule_calls`' results (None if there is no such student), as
    `load_for_rule` returns it."""
    rows = dict(zip(_COMPILED[every_column], found, strict=True))
    if not rows["student"]:
        return None
    (student,) = rows["student"]
    (school,) = rows["school"]
    student.school = school
    notices: dict = {}
    for notice in rows["notices"]:
        notices.setdefault(notice.purpose_id, []).append(notice)
    if every_column:
        _texts_prefetched(rows["notices"], rows["notice_texts"], "notice_id")
        _texts_prefetched(rows["purposes"], rows["purpose_texts"], "purpose_id")
    for purpose in rows["purposes"]:
        _prefetched(purpose, "notices", notices.get(purpose.pk, []))
    _prefetched(school, "purposes", rows["purposes"])
    by_guardianship: dict = {"notifications": {}, "notification_exceptions": {}}
    for name, by_link in by_guardianship.items():
        for row in rows[name]:
            by_link.setdefault(row.guardianship_id, []).append(row)
    for guardianship in rows["guardianships"]:
        for name, by_link in by_guardianship.items():
            _prefetched(guardianship, name, by_link.get(guardianship.pk, []))
    _prefetched(student, "guardianships", rows["guardianships"])
    _prefetched(student, "decisions", rows["decisions"])
    return student


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
    # From the 18th birthday only the student's own grant counts: the student's latest grant
    # or withdrawal (no guardian) made since then, per purpose.
    turned_18 = adult_since(student)
    adult = turned_18 is not None and at >= turned_18
    own_latest = {
        d.purpose_id: d
        for d in decisions
        if adult
        and d.guardian_id is None
        and d.decision in (Decision.GRANT, Decision.WITHDRAW)
        and turned_18 is not None
        and d.at >= turned_18
    }

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
        if adult:
            adult_reason, live_grants = _adult_reason(
                own_latest.get(purpose.pk), notice, validity, at
            )

        if not purpose.enabled:
            reason = "purpose_disabled"
        elif purpose.enablement_problems():
            reason = "purpose_not_configured"
        elif not on_roll:
            reason = "leaver"
        elif child_refused:
            reason = "child_refused"
        elif adult:
            reason = adult_reason
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


def _adult_reason(own, notice, validity: timedelta, at: datetime) -> tuple[str, list]:
    """An adult student's purpose: their own latest grant or withdrawal decides; parents'
    decisions no longer count, nor whether parents were told (PoFA s.26 is about children)."""
    if own is None:
        return "adult_student", []
    if own.decision == Decision.WITHDRAW:
        return "student_withdrew", []
    if notice is None or own.notice_version != notice.version:
        return "notice_changed", []
    if own.at + validity <= at:
        return "expired", []
    return "active", [own]


def active_purpose_codes(
    student: Student, *, at: datetime | None = None, decisions=None
) -> set[str]:
    return {s.code for s in purpose_statuses(student, at=at, decisions=decisions) if s.active}


def is_purpose_active(student: Student, code: str, *, at: datetime | None = None) -> bool:
    return code in active_purpose_codes(student, at=at)
