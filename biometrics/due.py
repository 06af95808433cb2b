"""When a child's biometric data must go: one answer for every page, job and decision (SPEC §2).

`erasure_due(student, at=...)` says, for one child at one instant, which of the child's data
must be erased by when, and why. The parent's page (its destroy-by date), the school's
transparency page (its schedule), every retention job, reconciliation and the decision path
(`biometrics.receivers`) all ask it, so no two of them can disagree.

It reads the consent rule (`consent.rules.purpose_statuses`) and what the portal holds; it
decides nothing about consent. Each purpose that is not active has an end, by the rule's reason:

- withdrawal, objection, the child's refusal, no consent, a purpose disabled or not configured,
  consent expired: now;
- the child left: leaving + the school's leaver window;
- a new notice version: its publication + the school's re-consent window, unless consent is
  given on it meanwhile (the purpose is then active again);
- a parent added who has not been told yet: the link + the re-consent window, unless every
  parent is told meanwhile;
- the student turned 18 and has not given their own consent: the 18th birthday + the
  re-consent window, unless the student gives it meanwhile (parents' grants stopped counting).

An active purpose ends when its consent expires, or, for a child who turns 18 before that,
at the 18th birthday + the re-consent window (parents' consent stops counting then).
Templates, photos and holder copies serve every purpose, so *everything* is due at the latest
end of any purpose; a purpose that ends earlier loses its recognition events at its own end.
Two clocks run while consent stands:
everything at the last recognition (or enrolment) + the template maximum age (BIPA), and each
recognition event after the school's event window. In every windowed case matching has
already stopped: the rule says "inactive" from the first instant.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db.models import Max, Min
from django.utils import timezone
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

from consent.ages import adult_since
from consent.compiled import CompiledQuery
from consent.models import School, Student
from consent.rules import PurposeStatus, load_for_rule, purpose_statuses

from .models import FaceTemplate, Photo, RecognitionEvent

EVERYTHING = "everything"  # photos, templates, events, every holder's copy, the data key
EVENTS = "events"  # recognition events only

# Why: one of the consent rule's reasons (consent.rules.REASONS; those with a window or a date
# named here), or one of the two clocks that run while consent stands.
EXPIRED = "expired"
LEAVER = "leaver"
NOTICE_CHANGED = "notice_changed"
NOT_NOTIFIED = "guardian_not_notified"
ADULT = "adult_student"
TEMPLATE_AGE = "template_age"
EVENT_WINDOW = "event_window"
CLOCKS = frozenset({TEMPLATE_AGE, EVENT_WINDOW})

# The erasure's trigger (as its receipt names it), by reason; any other reason is consent lost.
TRIGGERS = {
    LEAVER: "leaver",
    TEMPLATE_AGE: "template_age",
    EXPIRED: "consent_expired",
    NOTICE_CHANGED: "notice_changed",
    NOT_NOTIFIED: "not_notified",
    ADULT: "adult_no_consent",
}
CONSENT_LOST = "consent_lost"

# The rule's words for each dated reason; anything without a date of its own goes "now".
WORDS: dict[str, Promise] = {
    EXPIRED: _("when the last consent given ends"),
    LEAVER: _("%(days)s days after leaving the school"),
    NOTICE_CHANGED: _(
        "%(days)s days after the notice changed, unless consent is given on the new notice"
    ),
    NOT_NOTIFIED: _("%(days)s days after a parent was added, unless every parent is told"),
    ADULT: _("%(days)s days after the 18th birthday, unless the student gives consent"),
    TEMPLATE_AGE: _("%(years)s years after the last recognition or enrolment"),
    EVENT_WINDOW: _("%(days)s days after each recognition"),
}
NOW_EVERYTHING = _("now: no purpose is active, so everything is to be erased")
NOW_EVENTS = _("now: the purpose they were recorded for has ended")


def window_days(school: School, reason: str) -> int:
    """How long data may stay after a purpose ends for this reason (0: not at all)."""
    if reason == LEAVER:
        return school.leaver_window_days
    if reason in (NOTICE_CHANGED, NOT_NOTIFIED, ADULT):
        return school.reconsent_window_days
    return 0


@dataclass(frozen=True)
class Due:
    """Some of a child's data, the latest instant it may be held, and why.

    `what` is EVERYTHING or EVENTS; for EVENTS, `purposes` names whose events (empty: any
    purpose) and `older_than` keeps those newer than that age (the event window). `immediate`
    means the reason has no instant of its own: the data is due from whenever it is asked.
    """

    what: str
    by: datetime
    reason: str
    purposes: frozenset[str] = frozenset()
    older_than: timedelta | None = None
    immediate: bool = False
    days: int = 0

    def is_due(self, at: datetime) -> bool:
        return self.by <= at

    @property
    def trigger(self) -> str:
        return TRIGGERS.get(self.reason, CONSENT_LOST)

    @property
    def rule(self) -> str:
        """Why, in words (the active language), as the parent's page says it."""
        if self.immediate or self.reason not in WORDS:
            return str(NOW_EVENTS if self.what == EVENTS else NOW_EVERYTHING)
        if self.reason == TEMPLATE_AGE and self.days % 365:
            return str(_("%(days)s days after the last recognition or enrolment")) % {
                "days": self.days
            }
        return str(WORDS[self.reason]) % {
            "days": self.days,
            "years": f"{round(self.days / 365, 1):g}",
        }


@dataclass(frozen=True)
class Held:
    """What the portal itself holds about a child (holders are asked by reconciliation)."""

    portal: bool = False
    templates: bool = False
    last_interaction: datetime | None = None
    oldest_event: dict[str, datetime] = field(default_factory=dict)  # by purpose code


@dataclass(frozen=True)
class ChildDue:
    student: Student
    held: Held
    dues: list[Due]

    def due_now(self, at: datetime, *, reasons=None) -> list[Due]:
        """The dues that have come, those for `reasons` only (a predicate), soonest first."""
        return [d for d in self.dues if d.is_due(at) and (reasons is None or reasons(d.reason))]


def erasure_due(
    student: Student,
    *,
    at: datetime | None = None,
    loaded: bool = False,
    held: dict[object, Held] | None = None,
) -> list[Due]:
    """For one child at `at` (default now): what must be erased by when and why, soonest
    first. There is always one EVERYTHING due; EVENTS dues only for events the portal holds.
    `loaded`: the student comes from `load_for_rule` and nothing it reads changed since;
    `held`: what the portal holds of it, read already (`held_of`)."""
    at = at or timezone.now()
    return dues_for([student], at=at, loaded=loaded, held=held)[0].dues


def erasure_due_many(students: Iterable[Student], *, at: datetime) -> dict[object, list[Due]]:
    """`erasure_due` for many children, in a fixed number of queries however many."""
    return {c.student.pk: c.dues for c in dues_for(students, at=at)}


def dues_for(
    students: Iterable[Student],
    *,
    at: datetime,
    loaded: bool = False,
    clocks_only: bool = False,
    held: dict[object, Held] | None = None,
) -> list[ChildDue]:
    """Each child (in the order given, those that exist) with what it holds and its dues.
    The rule's inputs are read afresh unless `loaded` says the students carry them.
    `clocks_only`: only the dues that do not depend on consent (the template age and the event
    window), without reading the rule — for the jobs that act on those alone."""
    students = list(students)
    if clocks_only:
        ready = Student.objects.select_related("school").in_bulk([s.pk for s in students])
    elif loaded:
        ready = {s.pk: s for s in students}
    else:
        ready = load_for_rule([s.pk for s in students])
    if held is None:
        held = held_in_portal(list(ready))
    dues = _clock_dues if clocks_only else _dues
    return [
        ChildDue(ready[s.pk], held.get(s.pk, Held()), dues(ready[s.pk], held.get(s.pk), at))
        for s in students
        if s.pk in ready
    ]


def _held_queries(**which) -> list:
    """What `held_in_portal` reads, for the children `which` selects (a filter on student_id):
    each child's events (oldest and newest per purpose), newest template, and whether it has
    a photo."""
    return [
        RecognitionEvent.objects.filter(**which)
        .values("student_id", "purpose__code")
        .annotate(oldest=Min("at"), newest=Max("at"))
        .values_list("student_id", "purpose__code", "oldest", "newest"),
        FaceTemplate.objects.filter(**which)
        .values("student_id")
        .annotate(newest=Max("created_at"))
        .values_list("student_id", "newest"),
        Photo.objects.filter(**which).order_by().values_list("student_id").distinct(),
    ]


def held_in_portal(student_ids: list) -> dict[object, Held]:
    """What the portal holds of each child, in three queries."""
    return _held(*_held_queries(student_id__in=student_ids))


# The same three queries for one child, compiled once (the child's page asks them with the
# rest of its rows in one round trip: `held_calls`, then `held_of`).
_HELD_ONE = [
    CompiledQuery(
        lambda student, n=n: _held_queries(student_id=student)[n], student=Student._meta.pk
    )
    for n in range(3)
]


def held_calls(student_id) -> list[tuple[CompiledQuery, dict]]:
    """`held_in_portal`'s queries for one child, to run with others (`run_together`)."""
    return [(query, {"student": student_id}) for query in _HELD_ONE]


def held_of(found: list[list]) -> dict[object, Held]:
    """`held_in_portal`'s answer from the results of `held_calls`."""
    return _held(*found)


def _held(event_rows, template_rows, photo_rows) -> dict[object, Held]:
    events: dict = {}
    newest: dict = {}
    for student_id, code, oldest, last in event_rows:
        events.setdefault(student_id, {})[code] = oldest
        newest[student_id] = max(last, newest.get(student_id, last))
    templates = dict(template_rows)
    photos = {student_id for (student_id,) in photo_rows}
    held = {}
    for pk in set(events) | set(templates) | photos:
        last = [d for d in (newest.get(pk), templates.get(pk)) if d is not None]
        held[pk] = Held(
            portal=True,
            templates=pk in templates,
            last_interaction=max(last) if last else None,
            oldest_event=events.get(pk, {}),
        )
    return held


@dataclass(frozen=True)
class _End:
    by: datetime
    reason: str
    immediate: bool
    days: int = 0


def _dues(student: Student, held: Held | None, at: datetime) -> list[Due]:
    """1. Each purpose's end (the table above). 2. Everything is due at the latest of them: a
    purpose with a dated end keeps the shared data until then; one without (disabled, say)
    holds nothing back. 3. A purpose ending earlier loses its events at its own end. 4. The
    template age and the event window, while data is held."""
    held = held or Held()
    ends = {s.code: _purpose_end(student, s, at) for s in purpose_statuses(student, at=at)}
    dated = [e for e in ends.values() if not e.immediate]
    everything = (
        max(dated, key=lambda e: e.by)
        if dated
        else min(ends.values(), key=_telling, default=_End(at, "no_consent", immediate=True))
    )
    dues = [
        Due(
            EVERYTHING,
            everything.by,
            everything.reason,
            immediate=everything.immediate,
            days=everything.days,
        )
    ]
    for code, end in ends.items():
        if code in held.oldest_event and end.by < everything.by:
            dues.append(
                Due(
                    EVENTS,
                    end.by,
                    end.reason,
                    purposes=frozenset({code}),
                    immediate=end.immediate,
                    days=end.days,
                )
            )
    return sorted([*dues, *_clock_dues(student, held, at)], key=lambda d: d.by)


def _clock_dues(student: Student, held: Held | None, at: datetime) -> list[Due]:
    """The clocks that run while consent stands: everything at the last recognition (or
    enrolment) + the template maximum age; each event after the event window."""
    held = held or Held()
    school = student.school
    dues = []
    if held.templates and held.last_interaction:
        age = school.template_max_age_days
        by = held.last_interaction + timedelta(days=age)
        dues.append(Due(EVERYTHING, by, TEMPLATE_AGE, days=age))
    if held.oldest_event:
        days = school.event_window_days
        window = timedelta(days=days)
        oldest = min(held.oldest_event.values())
        dues.append(Due(EVENTS, oldest + window, EVENT_WINDOW, older_than=window, days=days))
    return sorted(dues, key=lambda d: d.by)


# With no dated end, everything is due now; the reason given is the one that says most about
# what happened (a purpose never consented to or switched off says least).
_TELLING = (
    "child_refused",
    "student_withdrew",
    "guardian_withdrew",
    "guardian_objected",
    EXPIRED,
)


def _telling(end: _End) -> int:
    return _TELLING.index(end.reason) if end.reason in _TELLING else len(_TELLING)


def _purpose_end(student: Student, status: PurposeStatus, at: datetime) -> _End:
    if status.active:
        # The rule gives every live grant an expiry; were one missing, the longest a consent
        # given now could last stands in for it.
        validity = timedelta(days=student.school.consent_validity_days)
        expires = status.expires_at or at + validity
        turned_18 = adult_since(student)
        if turned_18 is not None and at < turned_18 < expires:
            # Parents' consent stops counting at the 18th birthday: the data waits the window
            # for the student's own, and goes then at the latest.
            days = window_days(student.school, ADULT)
            return _End(turned_18 + timedelta(days=days), ADULT, immediate=False, days=days)
        return _End(expires, EXPIRED, immediate=False)
    start = _window_start(student, status)
    if start is None:
        return _End(at, status.reason, immediate=True)
    days = window_days(student.school, status.reason)
    return _End(start + timedelta(days=days), status.reason, immediate=False, days=days)


def _window_start(student: Student, status: PurposeStatus) -> datetime | None:
    """When the window of a windowed reason opened (None: the reason has no window)."""
    if status.reason == LEAVER:
        return student.left_on
    if status.reason == NOTICE_CHANGED:
        notice = status.purpose.current_notice
        return notice.published_at if notice else None
    if status.reason == NOT_NOTIFIED:
        # The set of parents to tell last changed when the newest of them was linked.
        links = [g.created_at for g in student.guardianships.all() if g.parental_responsibility]
        return max(links, default=None)
    if status.reason == ADULT:
        # Parents' grants stopped counting at the 18th birthday.
        return adult_since(student)
    return None


def destroy_by(dues: list[Due]) -> Due:
    """The EVERYTHING due that comes first: the date a parent is told everything goes by."""
    return min((d for d in dues if d.what == EVERYTHING), key=lambda d: d.by)
