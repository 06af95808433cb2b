"""The consent rule's answers kept in a table (ConsentStatus), for staff lists and filters.

`consent/rules.py` stays the only place consent is decided: `consent_status_refresh` runs
`purpose_statuses` and stores what it said. Every service that writes a rule input (a decision,
a guardianship, a notification or its exception, a leaver, a notice, a purpose's configuration,
the school's consent validity) calls it in its own transaction, so the table changes with the
input or not at all. `consent_status_check` recomputes everything and reports (and repairs) any
row that differs, so a write path that forgot to call it shows up.

Identification and enrolment never read this table: they ask the live rule.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime

from django.db import transaction
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils import timezone

from .ages import adult_since
from .models import ConsentDecision, ConsentStatus, School, Student
from .rules import ACTIVE, INACTIVE, load_for_rule, purpose_statuses

CHUNK = 500
OBJECTED = ("guardian_objected", "guardian_withdrew")
FIELDS = ["active", "reason", "expires_at", "recheck_at", "computed_at"]


def _chunks(ids: Iterable, size: int) -> Iterator[list]:
    chunk: list = []
    for pk in ids:
        chunk.append(pk)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _recheck_at(student: Student, now: datetime) -> datetime | None:
    """The earliest rule input recorded for a later moment than `now` (the rule ignores it
    until then), or the 18th birthday. Expiry is not here: `expires_at` covers it exactly."""
    later = [d.at for d in student.decisions.all() if d.at > now]
    for g in student.guardianships.all():
        later += [n.sent_at for n in g.notifications.all() if n.sent_at > now]
        later += [e.recorded_at for e in g.notification_exceptions.all() if e.recorded_at > now]
    if student.left_on is not None and student.left_on > now:
        later.append(student.left_on)
    turned_18 = adult_since(student)  # from then on only the student's own grant counts
    if turned_18 is not None and turned_18 > now:
        later.append(turned_18)
    return min(later) if later else None


def _computed(
    student_ids: Iterable, now: datetime, loaded: dict | None = None
) -> Iterator[ConsentStatus]:
    """The rule's answer for each (student, purpose), `CHUNK` students at a time (those in
    `loaded` as they are: students from `load_for_rule` carrying every input written since)."""
    for chunk in _chunks(student_ids, CHUNK):
        ready = {pk: loaded[pk] for pk in chunk if pk in loaded} if loaded else {}
        missing = [pk for pk in chunk if pk not in ready]
        if missing:
            ready.update(load_for_rule(missing))
        for student in ready.values():
            recheck = _recheck_at(student, now)
            for s in purpose_statuses(student, at=now):
                yield ConsentStatus(
                    student_id=student.pk,
                    purpose_id=s.purpose.pk,
                    active=s.active,
                    reason=s.reason,
                    expires_at=s.expires_at,
                    recheck_at=recheck,
                    computed_at=now,
                )


def consent_status_refresh(
    student_ids: Iterable, *, at: datetime | None = None, loaded: dict | None = None
) -> int:
    """Run the rule for these students now (or "as of" `at`, for jobs and tests that move the
    clock) and store its answers. Returns rows written. `loaded` ({pk: student}): students the
    caller loaded with `load_for_rule` and kept up to date with what it wrote (a decision
    service), used as they are instead of loading them again.

    Call it inside the transaction that wrote the rule input (it joins it).
    """
    now = at or timezone.now()
    written = 0
    with transaction.atomic(savepoint=False):  # joins the caller's; no savepoint to pay for
        batch: list[ConsentStatus] = []
        for row in _computed(student_ids, now, loaded):
            batch.append(row)
            if len(batch) >= CHUNK:
                written += _upsert(batch)
                batch = []
        written += _upsert(batch)
    return written


def consent_status_refresh_school(school: School | int) -> int:
    """After a change to a purpose or the school's consent validity: every child of it."""
    school_id = school.pk if isinstance(school, School) else school
    ids = Student.objects.filter(school_id=school_id).values_list("pk", flat=True).order_by("pk")
    return consent_status_refresh(ids.iterator(chunk_size=2000))


def _upsert(rows: list[ConsentStatus]) -> int:
    if rows:
        ConsentStatus.objects.bulk_create(
            rows,
            update_conflicts=True,
            unique_fields=["student", "purpose"],
            update_fields=FIELDS,
        )
    return len(rows)


def consent_status_refresh_due(students: QuerySet[Student], *, at: datetime | None = None) -> int:
    """Re-run the rule for those of `students` with an input that has come into force since
    their rows were computed (`recheck_at` passed). One query when there are none."""
    at = at or timezone.now()
    due = list(
        ConsentStatus.objects.filter(student__in=students.values("pk"), recheck_at__lte=at)
        .values_list("student_id", flat=True)
        .distinct()
    )
    return consent_status_refresh(due, at=at) if due else 0


# --- Reads --------------------------------------------------------------------------------


def _live_active(at: datetime) -> Q:
    return Q(active=True) & (Q(expires_at__isnull=True) | Q(expires_at__gt=at))


def students_by_consent(
    students: QuerySet[Student], value: str, *, at: datetime | None = None
) -> QuerySet[Student]:
    """Filter a staff list by what the rule says (`active`: some purpose active; `objected`: a
    parent objected or withdrew; `child_refused`) or by decisions (`undecided`: no parent has
    decided anything). A fixed number of queries whatever the number of students."""
    at = at or timezone.now()
    if value == "undecided":
        decided = ConsentDecision.objects.filter(student=OuterRef("pk"), guardian__isnull=False)
        return students.filter(~Exists(decided))
    consent_status_refresh_due(students, at=at)
    rows = ConsentStatus.objects.filter(student=OuterRef("pk"))
    if value == "active":
        rows = rows.filter(_live_active(at))
    elif value == "objected":
        rows = rows.filter(reason__in=OBJECTED)
    elif value == "child_refused":
        rows = rows.filter(reason="child_refused")
    else:
        raise ValueError(f"unknown consent filter {value!r}")
    return students.filter(Exists(rows))


def consent_status_table(
    student_ids: Iterable, *, at: datetime | None = None
) -> dict[object, list[tuple[str, str]]]:
    """Per student, `(purpose code, "active" | "inactive")` in purpose-code order, from the
    table; students with no rows yet (just created, no guardian) are asked of the rule."""
    at = at or timezone.now()
    ids = list(student_ids)
    consent_status_refresh_due(Student.objects.filter(pk__in=ids), at=at)
    table: dict = {pk: [] for pk in ids}
    rows = (
        ConsentStatus.objects.filter(student_id__in=ids)
        .select_related("purpose")
        .order_by("purpose__code")
    )
    for row in rows:
        live = row.active and (row.expires_at is None or row.expires_at > at)
        table[row.student_id].append((row.purpose.code, ACTIVE if live else INACTIVE))
    missing = [pk for pk, statuses in table.items() if not statuses]
    if missing:
        for pk, student in load_for_rule(missing).items():
            table[pk] = [(s.code, s.status) for s in purpose_statuses(student, at=at)]
    return table


# --- Drift check --------------------------------------------------------------------------


@dataclass
class Drift:
    student_id: object
    purpose_id: int
    stored: str
    computed: str


@dataclass
class CheckReport:
    checked: int = 0
    drift: list[Drift] = field(default_factory=list)
    repaired: int = 0


def _effective(row: ConsentStatus | None, at: datetime) -> str:
    """A row as the filters read it at `at`, for comparing with a fresh computation."""
    if row is None:
        return "missing"
    if row.active and row.expires_at is not None and row.expires_at <= at:
        return "expired"
    expires = row.expires_at.isoformat() if row.active and row.expires_at else ""
    recheck = row.recheck_at.isoformat() if row.recheck_at else ""
    return f"{row.reason} {expires} {recheck}".strip()


def consent_status_check(
    *, school: School | None = None, repair: bool = False, at: datetime | None = None
) -> CheckReport:
    """Recompute every child's statuses with the rule and compare with the table.

    1. For each chunk of students, compute the rule's answers now.
    2. Compare with the stored rows as the filters read them (expiry applied); a missing row,
       an extra row (a purpose the rule no longer reports) or a different answer is drift.
    3. With `repair`, store the fresh answers for the drifted students.
    """
    report = CheckReport()
    students = Student.objects.order_by("pk")
    if school is not None:
        students = students.filter(school=school)
    for chunk in _chunks(students.values_list("pk", flat=True).iterator(chunk_size=2000), CHUNK):
        now = at or timezone.now()
        # Rows with an input that came into force since are re-run first, as reads do.
        consent_status_refresh_due(Student.objects.filter(pk__in=chunk), at=now)
        stored = {
            (r.student_id, r.purpose_id): r for r in ConsentStatus.objects.filter(student__in=chunk)
        }
        fresh = {(r.student_id, r.purpose_id): r for r in _computed(chunk, now)}
        drifted = set()
        for key in fresh.keys() | stored.keys():
            report.checked += 1
            have = _effective(stored.get(key), now)
            want = _effective(fresh.get(key), now) if key in fresh else "missing"
            if have != want:
                report.drift.append(Drift(key[0], key[1], have, want))
                drifted.add(key[0])
        if repair and drifted:
            with transaction.atomic():
                extra = [stored[k].pk for k in stored.keys() - fresh.keys()]
                ConsentStatus.objects.filter(pk__in=extra).delete()
                report.repaired += consent_status_refresh(drifted, at=now)
    return report
