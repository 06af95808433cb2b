"""Roster import: students and guardians from CSV, idempotent on external ids (docs/roster.md)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from .actors import Actor
from .audit import audit_record
from .jobs import job_enqueue
from .models import Guardian, Guardianship, NoticeDelivery, RosterImport, School, Student
from .roster_csv import clean_row, read_csv
from .services import (
    guardian_get_or_create,
    guardianship_link,
    notice_deliveries_enqueue,
    student_create,
    student_update,
)
from .status import consent_status_refresh

__all__ = ["read_csv", "roster_import", "roster_job_create", "roster_job_run"]


@dataclass
class ImportReport:
    rows: int = 0
    students_created: int = 0
    students_updated: int = 0
    guardians_created: int = 0
    links_created: int = 0
    errors: list[tuple[int, str]] = field(default_factory=list)

    def add(self, other: ImportReport) -> None:
        self.students_created += other.students_created
        self.students_updated += other.students_updated
        self.guardians_created += other.guardians_created
        self.links_created += other.links_created

    @property
    def changed(self) -> int:
        return self.students_created + self.students_updated + self.links_created


CHUNK_ROWS = 200  # rows per transaction: short write locks, little lost to a killed worker
CONFLICT = "changed by someone else during the import; import the file again"


class _Importer:
    """What an import knows about the school, kept across its chunks so that each row costs
    only its own writes: the school's students, its guardian links, and which e-mail addresses
    already have a guardian."""

    def __init__(self, school: School, actor: Actor) -> None:
        self.school = school
        self.actor = actor
        self.students = {s.external_id: s for s in Student.objects.filter(school=school)}
        self.links = set(
            Guardianship.objects.filter(student__school=school).values_list(
                "guardian__email", "student__external_id"
            )
        )
        self.known_guardians = set(Guardian.objects.values_list("email", flat=True))
        self.guardians: dict[str, Guardian] = {}

    def chunk(self, numbered_rows: list[tuple[int, dict]], report: ImportReport) -> None:
        """Import some rows in one transaction, each row in its own savepoint (a bad row
        changes nothing); then store the consent statuses of the children it touched."""
        cleaned, errors = [], []
        for line, row in numbered_rows:
            try:
                cleaned.append((line, clean_row(row)))
            except ValueError as exc:
                errors.append((line, str(exc)))
        todo = [(line, v) for line, v in cleaned if self._has_work(v)]
        if todo:  # a re-run has nothing to do: no transaction, no write lock
            self._write(todo, report, errors)
        report.errors.extend(sorted(errors))

    def _write(self, todo: list[tuple[int, dict]], report: ImportReport, errors: list) -> None:
        touched: set = set()
        with transaction.atomic():
            for line, values in todo:
                counts = ImportReport()
                try:
                    with transaction.atomic():
                        learned = self._row(values, counts, touched)
                except (ValueError, ValidationError) as exc:
                    errors.append((line, str(exc)))
                except IntegrityError:
                    errors.append((line, CONFLICT))
                else:
                    self.remember(learned)
                    report.add(counts)
            consent_status_refresh(touched)
            # The chunk's new guardians' notices: a few messages after commit, not one per link.
            notice_deliveries_enqueue(
                NoticeDelivery.objects.filter(
                    guardianship__student_id__in=touched,
                    status=NoticeDelivery.Status.PENDING,
                    attempts=0,
                ).values_list("pk", flat=True)
            )

    def _has_work(self, values: dict) -> bool:
        student = self.students.get(values["external_id"])
        if student is None:
            return True
        if (student.name, student.class_name, student.date_of_birth) != (
            values["name"],
            values["class_name"],
            values["date_of_birth"],
        ):
            return True
        email = values["guardian_email"].lower()
        return bool(email) and (email, student.external_id) not in self.links

    def _row(self, values: dict, report: ImportReport, touched: set) -> list:
        """Write one row; return what the importer learns from it, to remember once the row's
        savepoint has been released (a row rolled back must leave nothing behind here)."""
        learned: list = []
        student = self.students.get(values["external_id"])
        if student is None:
            student = student_create(
                school=self.school,
                external_id=values["external_id"],
                name=values["name"],
                date_of_birth=values["date_of_birth"],
                class_name=values["class_name"],
                actor=self.actor,
                refresh_status=False,  # once per chunk, by the caller
            )
            report.students_created += 1
            touched.add(student.pk)
            learned.append(("student", student))
        elif (student.name, student.class_name, student.date_of_birth) != (
            values["name"],
            values["class_name"],
            values["date_of_birth"],
        ):
            student_update(
                student=student,
                external_id=student.external_id,
                name=values["name"],
                date_of_birth=values["date_of_birth"],
                class_name=values["class_name"],
                actor=self.actor,
            )
            report.students_updated += 1
        email = values["guardian_email"].lower()
        if email and (email, student.external_id) not in self.links:
            # A guardian who exists (perhaps with children at another school) is linked as
            # they are: the file's name and language are for new guardians only, and no
            # account is ever looked up by address (consent.accounts).
            guardian = self.guardians.get(email)
            if guardian is None and email in self.known_guardians:
                guardian = guardian_get_or_create(
                    email=email, name=values["guardian_name"], language=values["language"]
                )
            elif guardian is None:
                guardian = guardian_get_or_create(
                    email=email,
                    name=values["guardian_name"],
                    language=values["language"],
                    known_new=True,
                )
                report.guardians_created += 1
            guardianship_link(
                guardian=guardian,
                student=student,
                parental_responsibility=values["pr"],
                actor=self.actor,
                known_new=True,
                refresh_status=False,  # once per chunk, by the caller
                queue_notice=False,  # queued per chunk, by the caller
            )
            touched.add(student.pk)
            report.links_created += 1
            learned.append(("link", (email, student.external_id, guardian)))
        return learned

    def remember(self, learned: list) -> None:
        for kind, item in learned:
            if kind == "student":
                self.students[item.external_id] = item
            else:
                email, external_id, guardian = item
                self.links.add((email, external_id))
                self.guardians[email] = guardian
                self.known_guardians.add(email)


def _numbered(rows: list[dict], start: int, size: int) -> list[tuple[int, dict]]:
    return [(start + i + 2, row) for i, row in enumerate(rows[start : start + size])]  # header=1


def roster_import(
    *,
    school: School,
    rows: list[dict],
    actor: Actor,
    progress: Callable[[int], None] | None = None,
    chunk_rows: int = CHUNK_ROWS,
) -> ImportReport:
    """Import rows (one per student, or per student–guardian pair) in chunks, here and now
    (the management command; the admin page queues a `RosterImport` instead). Good rows land;
    each bad row is reported by its line number and changes nothing. Re-running changes
    nothing."""
    report = ImportReport()
    importer = _Importer(school, actor)
    for start in range(0, len(rows), chunk_rows):
        batch = _numbered(rows, start, chunk_rows)
        importer.chunk(batch, report)
        report.rows += len(batch)
        if progress:
            progress(len(batch))
    return report


# --- The queued import (admin page) ---------------------------------------------------------

STUCK_AFTER = timedelta(minutes=5)  # no chunk committed for this long: the watchdog re-queues
MAX_ATTEMPTS = 5
#: Registered in consent.tasks under this name.
IMPORT_TASK = "consent.tasks.roster_import_task"


def roster_job_create(*, school: School, data: bytes, filename: str, user) -> RosterImport:
    """Check the file's header, store the CSV with a job row, queue the import after commit.
    Raises ValueError (or UnicodeDecodeError) for a file that is not a roster CSV."""
    text = data.decode("utf-8-sig")
    rows = read_csv(text)
    with transaction.atomic():
        job = RosterImport.objects.create(
            school=school,
            created_by=user,
            filename=filename[:200],
            csv_text=text,
            total_rows=len(rows),
        )
        audit_record(
            "roster.import_queued",
            actor=Actor.staff(user),
            school_id=school.pk,
            data={"job": job.pk, "rows": len(rows)},
        )
        job_enqueue(IMPORT_TASK, job.pk)
    return job


def roster_job_run(*, job_id: int, chunk_rows: int = CHUNK_ROWS) -> RosterImport | None:
    """Run (or resume) a queued import to its end.

    1. Take the job over: a new `claim` token; a run that finds another token at its next
       chunk stops (a re-queued job never runs twice at once).
    2. From `rows_done`, import a chunk per transaction; the job's cursor, counters and error
       report move in that same transaction, so a killed worker resumes exactly there.
    3. At the end, mark it done and delete the stored CSV.
    """
    claim = uuid.uuid4().hex
    with transaction.atomic():
        job = RosterImport.objects.select_for_update().filter(pk=job_id).first()
        if job is None or job.finished:
            return job
        job.status = RosterImport.Status.RUNNING
        job.claim = claim
        job.attempts += 1
        job.heartbeat_at = timezone.now()
        job.save(update_fields=["status", "claim", "attempts", "heartbeat_at"])
    try:
        rows = read_csv(job.csv_text)
        importer = _Importer(job.school, _job_actor(job))
        while True:
            with transaction.atomic():
                job = RosterImport.objects.select_for_update().get(pk=job_id)
                if job.claim != claim or job.finished:
                    return job
                if job.rows_done >= len(rows):
                    return _job_finish(job, RosterImport.Status.DONE)
                report = ImportReport()
                batch = _numbered(rows, job.rows_done, chunk_rows)
                importer.chunk(batch, report)
                job.rows_done += len(batch)
                job.students_created += report.students_created
                job.students_updated += report.students_updated
                job.guardians_created += report.guardians_created
                job.links_created += report.links_created
                job.errors = [*job.errors, *([line, msg] for line, msg in report.errors)]
                job.heartbeat_at = timezone.now()
                job.save()
    except Exception as exc:
        _job_failed(job_id, claim, exc)
        raise


def _job_actor(job: RosterImport) -> Actor:
    return Actor.staff(job.created_by) if job.created_by else Actor.system("roster import")


def _job_finish(job: RosterImport, status: str, failure: str = "") -> RosterImport:
    job.status = status
    job.failure = failure[:300]
    job.csv_text = ""  # personal data, needed no longer
    job.finished_at = timezone.now()
    job.save()
    audit_record(
        f"roster.import_{status}",
        actor=_job_actor(job),
        school_id=job.school_id,
        data={
            "job": job.pk,
            "rows": job.rows_done,
            "students_created": job.students_created,
            "links_created": job.links_created,
            "errors": len(job.errors),
        },
    )
    return job


def _job_failed(job_id: int, claim: str, exc: Exception) -> None:
    """Record why a run stopped; after MAX_ATTEMPTS runs, give up (and drop the CSV)."""
    with transaction.atomic():
        job = RosterImport.objects.select_for_update().filter(pk=job_id, claim=claim).first()
        if job is None or job.finished:
            return
        failure = f"{type(exc).__name__}: {exc}"
        if job.attempts >= MAX_ATTEMPTS:
            _job_finish(job, RosterImport.Status.FAILED, failure)
        else:
            job.failure = failure[:300]
            job.save(update_fields=["failure"])


def roster_job_watchdog(*, now: datetime | None = None) -> list[int]:
    """Re-queue imports that stopped moving (a dead worker, a lost message). Returns their ids."""
    now = now or timezone.now()
    stuck = list(
        RosterImport.objects.filter(
            status__in=[RosterImport.Status.PENDING, RosterImport.Status.RUNNING]
        )
        .filter(
            Q(heartbeat_at__lt=now - STUCK_AFTER)
            | Q(heartbeat_at__isnull=True, created_at__lt=now - STUCK_AFTER)
        )
        .values_list("pk", flat=True)
    )
    for pk in stuck:
        job_enqueue(IMPORT_TASK, pk)
    return stuck
