from django.core.management.base import BaseCommand, CommandError

from consent.models import School
from consent.status import consent_status_check


class Command(BaseCommand):
    help = (
        "Recompute every child's consent statuses with the rule and compare them with the stored "
        "ones (the students list and its filter read those). Reports each row that differs; "
        "--repair stores the rule's answer. A difference means a write path forgot to refresh."
    )

    def add_arguments(self, parser):
        parser.add_argument("--school", help="school slug (default: every school)")
        parser.add_argument("--repair", action="store_true", help="store the rule's answers")

    def handle(self, *args, school: str | None, repair: bool, **options):
        found = None
        if school:
            found = School.objects.filter(slug=school).first()
            if found is None:
                raise CommandError(f"No school has the slug {school!r}")
        report = consent_status_check(school=found, repair=repair)
        for d in report.drift[:100]:
            self.stdout.write(
                f"  student {d.student_id} purpose {d.purpose_id}: "
                f"stored {d.stored!r}, rule says {d.computed!r}"
            )
        if len(report.drift) > 100:
            self.stdout.write(f"  ... and {len(report.drift) - 100} more")
        if not report.drift:
            self.stdout.write(f"OK: {report.checked} rows agree with the rule.")
            return
        summary = f"{len(report.drift)} rows differ from the rule ({report.checked} checked)"
        if repair:
            self.stdout.write(f"{summary}; repaired ({report.repaired} rows rewritten).")
            return
        raise CommandError(f"{summary}. Run again with --repair to store the rule's answers.")
