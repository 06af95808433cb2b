"""Roster import: students and guardians from CSV, idempotent on external ids (SPEC §1)."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction

from .actors import Actor
from .models import Guardian, Guardianship, School, Student
from .services import guardian_get_or_create, guardianship_link, student_create

COLUMNS = [
    "external_id",
    "name",
    "date_of_birth",
    "class_name",
    "guardian_email",
    "guardian_name",
    "parental_responsibility",
    "guardian_language",
]
REQUIRED = ["external_id", "name"]
TRUE = {"1", "true", "yes", "y", "t"}
FALSE = {"0", "false", "no", "n", "f", ""}


@dataclass
class ImportReport:
    rows: int = 0
    students_created: int = 0
    students_updated: int = 0
    guardians_created: int = 0
    links_created: int = 0
    errors: list[tuple[int, str]] = field(default_factory=list)

    @property
    def changed(self) -> int:
        return self.students_created + self.students_updated + self.links_created


def _clean(row: dict, line: int) -> dict:
    values = {k: (row.get(k) or "").strip() for k in COLUMNS}
    for column in REQUIRED:
        if not values[column]:
            raise ValueError(f"{column} is empty")
    if len(values["external_id"]) > 100 or len(values["name"]) > 200:
        raise ValueError("a value is too long")
    dob = None
    if values["date_of_birth"]:
        try:
            dob = date.fromisoformat(values["date_of_birth"])
        except ValueError as exc:
            raise ValueError(
                f"date_of_birth {values['date_of_birth']!r} is not YYYY-MM-DD"
            ) from exc
    if values["guardian_email"]:
        try:
            validate_email(values["guardian_email"])
        except ValidationError as exc:
            raise ValueError(f"guardian_email {values['guardian_email']!r} is not valid") from exc
        if not values["guardian_name"]:
            raise ValueError("guardian_name is empty")
    pr = values["parental_responsibility"].lower()
    if pr not in TRUE | FALSE:
        raise ValueError(f"parental_responsibility {pr!r} must be yes or no")
    language = values["guardian_language"] or "en"
    if language not in ("en", "zh-hans"):
        raise ValueError(f"guardian_language {language!r} must be en or zh-hans")
    return {**values, "date_of_birth": dob, "pr": pr in TRUE or pr == "", "language": language}


def roster_import(
    *,
    school: School,
    rows: Iterable[dict],
    actor: Actor,
    progress: Callable[[], None] | None = None,
) -> ImportReport:
    """Import rows (one per student, or per student–guardian pair). Good rows land; each bad
    row is reported by its line number and changes nothing. Re-running changes nothing."""
    report = ImportReport()
    students = {s.external_id: s for s in Student.objects.filter(school=school)}
    links = set(
        Guardianship.objects.filter(student__school=school).values_list(
            "guardian__email", "student__external_id"
        )
    )
    known_guardians = set(Guardian.objects.values_list("email", flat=True))
    for line, row in enumerate(rows, start=2):  # line 1 is the header
        report.rows += 1
        try:
            values = _clean(row, line)
            with transaction.atomic():
                student = students.get(values["external_id"])
                if student is None:
                    student = student_create(
                        school=school,
                        external_id=values["external_id"],
                        name=values["name"],
                        date_of_birth=values["date_of_birth"],
                        class_name=values["class_name"],
                        actor=actor,
                    )
                    students[student.external_id] = student
                    report.students_created += 1
                elif (student.name, student.class_name, student.date_of_birth) != (
                    values["name"],
                    values["class_name"],
                    values["date_of_birth"],
                ):
                    student.name = values["name"]
                    student.class_name = values["class_name"]
                    student.date_of_birth = values["date_of_birth"]
                    student.save(update_fields=["name", "class_name", "date_of_birth"])
                    report.students_updated += 1
                email = values["guardian_email"].lower()
                if email and (email, student.external_id) not in links:
                    if email not in known_guardians:
                        report.guardians_created += 1
                        known_guardians.add(email)
                    guardian = guardian_get_or_create(
                        email=email, name=values["guardian_name"], language=values["language"]
                    )
                    guardianship_link(
                        guardian=guardian,
                        student=student,
                        parental_responsibility=values["pr"],
                        actor=actor,
                    )
                    links.add((email, student.external_id))
                    report.links_created += 1
        except (ValueError, ValidationError) as exc:
            report.errors.append((line, str(exc)))
        if progress:
            progress()
    return report


def read_csv(data: bytes | str) -> list[dict]:
    text = data.decode("utf-8-sig") if isinstance(data, bytes) else data
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in REQUIRED if c not in (reader.fieldnames or [])]
    if missing:
        raise ValueError(f"the CSV has no {', '.join(missing)} column")
    return list(reader)
