from django.core.management.base import BaseCommand, CommandError

from consent.audit import audit_verify


class Command(BaseCommand):
    help = "Verify the audit trail's hash chain; report the first broken link."

    def handle(self, *args, **options):
        report = audit_verify()
        if report.ok:
            self.stdout.write(f"OK: {report.checked} events, chain intact.")
            return
        where = f"event {report.first_broken_id}" if report.first_broken_id else "the chain's end"
        raise CommandError(
            f"BROKEN at {where}: {report.problem} ({report.checked} events verified before it)."
        )
