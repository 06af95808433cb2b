"""Reading a roster CSV and checking its rows (docs/roster.md); the import is consent.roster.

Every value is bounded: a field over the CSV reader's limit (128 KiB) makes its line an error,
as does a value longer than its column, a control character (NUL above all) or a date of
birth in the future. Nothing is stored from a bad line; the other lines import.
"""

from __future__ import annotations

import csv
import io
import re
from datetime import date

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.utils import timezone

from .languages import codes

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
# The longest value each column may hold (the models' limits).
MAX_LENGTHS = {
    "external_id": 100,
    "name": 200,
    "class_name": 100,
    "guardian_email": 254,
    "guardian_name": 200,
}
# Control characters (C0, DEL, C1): never part of a name, and a NUL cannot be stored at all.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# A line the CSV reader could not read (a field over csv.field_size_limit(), 128 KiB) stands in
# the rows as {BROKEN: why}, so that it is reported on its line like any other bad row.
BROKEN = "__broken__"


def text_problem(column: str, value: str) -> str | None:
    """Why a roster value cannot be stored, or None (also used by the staff API)."""
    limit = MAX_LENGTHS.get(column)
    if limit is not None and len(value) > limit:
        return f"{column} is longer than {limit} characters"
    if _CONTROL.search(value):
        return f"{column} holds a control character (such as NUL)"
    return None


def date_of_birth_problem(dob: date, *, today: date | None = None) -> str | None:
    """A date of birth in the future is a typing error, never a child (also the staff API)."""
    if dob > (today or timezone.localdate()):
        return f"date_of_birth {dob.isoformat()} is in the future"
    return None


def clean_row(row: dict) -> dict:
    """One row's values, checked and converted; ValueError says what is wrong with it."""
    if BROKEN in row:
        raise ValueError(row[BROKEN])
    values = {k: (row.get(k) or "").strip() for k in COLUMNS}
    for column in REQUIRED:
        if not values[column]:
            raise ValueError(f"{column} is empty")
    for column in COLUMNS:
        if problem := text_problem(column, values[column]):
            raise ValueError(problem)
    dob = None
    if values["date_of_birth"]:
        try:
            dob = date.fromisoformat(values["date_of_birth"])
        except ValueError as exc:
            raise ValueError(
                f"date_of_birth {values['date_of_birth'][:20]!r} is not YYYY-MM-DD"
            ) from exc
        if problem := date_of_birth_problem(dob):
            raise ValueError(problem)
    if values["guardian_email"]:
        try:
            validate_email(values["guardian_email"])
        except ValidationError as exc:
            raise ValueError("guardian_email is not a valid address") from exc
        if not values["guardian_name"]:
            raise ValueError("guardian_name is empty")
    pr = values["parental_responsibility"].lower()
    if pr not in TRUE | FALSE:
        raise ValueError(f"parental_responsibility {pr[:20]!r} must be yes or no")
    # Empty: the guardian has not chosen (their pages follow their browser).
    language = values["guardian_language"]
    if language and language not in codes():
        raise ValueError(
            f"guardian_language {language[:20]!r} must be one of {', '.join(codes())} or empty"
        )
    return {**values, "date_of_birth": dob, "pr": pr in TRUE or pr == "", "language": language}


def read_csv(data: bytes | str) -> list[dict]:
    """The rows of a roster CSV. Raises ValueError for a file that is not one (no header with
    the required columns, or NUL characters, which no spreadsheet writes and no database
    column stores). A line the reader cannot read is kept as a BROKEN row, so the import
    reports it on its line and goes on."""
    text = data.decode("utf-8-sig") if isinstance(data, bytes) else data
    if "\x00" in text:
        line = text.count("\n", 0, text.index("\x00")) + 1
        raise ValueError(f"line {line} holds a NUL character")
    reader = csv.DictReader(io.StringIO(text))
    try:
        fieldnames = reader.fieldnames or []
    except csv.Error as exc:
        raise ValueError(f"its header cannot be read ({exc})") from exc
    missing = [c for c in REQUIRED if c not in fieldnames]
    if missing:
        raise ValueError(f"the CSV has no {', '.join(missing)} column")
    rows: list[dict] = []
    while True:
        try:
            rows.append(next(reader))
        except StopIteration:
            return rows
        except csv.Error as exc:
            rows.append({BROKEN: f"the line cannot be read as CSV ({exc})"})
