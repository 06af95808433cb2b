from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from consent.actors import Actor
from consent.roster import read_csv, roster_import
from consent.selectors import school_from_option
from portal.progress import ProgressBar


class Command(BaseCommand):
    help = (
        "Import students and guardians from CSV (columns: external_id, name, date_of_birth, "
        "class_name, guardian_email, guardian_name, parental_responsibility, "
        "guardian_language). Idempotent on external_id; bad rows are reported by line."
    )

    def add_arguments(self, parser):
        parser.add_argument("csv")
        parser.add_argument("--school", help="school slug (optional when there is one school)")

    def handle(self, *args, csv: str, school: str, **options):
        found = school_from_option(school)
        try:
            rows = read_csv(Path(csv).read_bytes())
        except (OSError, ValueError, UnicodeDecodeError) as exc:
            raise CommandError(f"Cannot read {csv}: {exc}") from exc
        bar = ProgressBar(len(rows), "Importing", stream=self.stderr)
        report = roster_import(
            school=found, rows=rows, actor=Actor.system("import_roster"), progress=bar.step
        )
        bar.close()
        self.stdout.write(
            f"{report.rows} rows: {report.students_created} students created, "
            f"{report.students_updated} updated, {report.guardians_created} guardians created, "
            f"{report.links_created} guardian links, {len(report.errors)} errors"
        )
        for line, message in report.errors:
            self.stdout.write(f"  line {line}: {message}")
