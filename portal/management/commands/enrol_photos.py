"""Bulk enrolment: every image in DIR named after a student's external id (e.g. S-1042.jpg).

Each photo goes through the same service as the API: refused without active consent, rejected
with a reason for a bad image, otherwise stored encrypted and queued for the `faces` workers.
"""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from biometrics.image_checks import ImageRejected
from biometrics.services import NoActiveConsent, photo_enrol
from consent.actors import Actor
from consent.models import Student
from consent.selectors import school_from_option
from portal.progress import ProgressBar

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp"}


class Command(BaseCommand):
    help = "Enrol every photo in DIR; a file's name (without extension) is the external id."

    def add_arguments(self, parser):
        parser.add_argument("directory")
        parser.add_argument("--school", help="school slug (optional when there is one school)")
        parser.add_argument(
            "--now", action="store_true", help="compute templates here instead of on workers"
        )

    def handle(self, *args, directory: str, school: str, now: bool, **options):
        folder = Path(directory)
        if not folder.is_dir():
            raise CommandError(f"{directory} is not a directory")
        found = school_from_option(school)
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        students = {s.external_id: s for s in Student.objects.filter(school=found)}
        actor = Actor.system("enrol_photos")
        outcomes: dict[str, list[str]] = {}
        bar = ProgressBar(len(files), "Enrolling", stream=self.stderr)
        for path in files:
            student = students.get(path.stem)
            if student is None:
                outcome = "unknown_student"
            else:
                try:
                    photo = photo_enrol(
                        student=student,
                        data=path.read_bytes(),
                        actor=actor,
                        source="enrol_photos",
                        process_now=now,
                    )
                    outcome = photo.status if now else "queued"
                    if photo.reason:
                        outcome = f"rejected:{photo.reason}"
                except NoActiveConsent:
                    outcome = "no_active_consent"
                except ImageRejected as exc:
                    outcome = f"rejected:{exc.code}"
            outcomes.setdefault(outcome, []).append(path.name)
            bar.step()
        bar.close()
        for outcome, names in sorted(outcomes.items()):
            self.stdout.write(f"{outcome}: {len(names)}")
            if outcome not in ("queued", "enrolled"):
                for name in names:
                    self.stdout.write(f"  {name}")
