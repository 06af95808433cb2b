from django.core.management.base import BaseCommand, CommandError

from consent.actors import Actor
from consent.models import Student
from consent.selectors import school_from_option
from consent.services import ConsentError
from portal.child_auth import child_link_issue


class Command(BaseCommand):
    help = (
        "Print a one-time sign-in link for a pupil's own page (/me/), if they are at or above "
        "the school's competence age (docs/child-sign-in.md)."
    )

    def add_arguments(self, parser):
        parser.add_argument("external_id", help="the pupil's roster id")
        parser.add_argument("--school", help="the school's slug (needed if there are several)")
        parser.add_argument("--token", action="store_true", help="print only the token")

    def handle(self, *args, external_id: str, school: str | None, token: bool, **options):
        found = school_from_option(school)
        student = Student.objects.filter(school=found, external_id=external_id).first()
        if student is None:
            raise CommandError(f"{found.slug} has no pupil with the id {external_id}")
        try:
            link = child_link_issue(student=student, actor=Actor.system("child_link command"))
        except ConsentError as exc:
            raise CommandError(f"{exc.code}: {exc.detail}") from exc
        self.stdout.write(link.token if token else link.url)
