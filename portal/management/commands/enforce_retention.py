from datetime import datetime

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from portal.retention import JOBS, retention_run


class Command(BaseCommand):
    help = "Run the retention jobs (all, or --job NAME) as of now or --as-of."

    def add_arguments(self, parser):
        parser.add_argument("--as-of", help="ISO date or datetime to act as of (default: now)")
        parser.add_argument("--dry-run", action="store_true", help="report, change nothing")
        parser.add_argument("--job", action="append", choices=sorted(JOBS), help="repeatable")

    def handle(self, *args, as_of: str | None, dry_run: bool, job: list | None, **options):
        when = timezone.now()
        if as_of:
            try:
                when = datetime.fromisoformat(as_of)
            except ValueError as exc:
                raise CommandError(f"--as-of must be an ISO date or datetime: {as_of}") from exc
            if timezone.is_naive(when):
                when = timezone.make_aware(when)
        for name in job or list(JOBS):
            run = retention_run(name, as_of=when, dry_run=dry_run)
            counts = ", ".join(f"{k}={v}" for k, v in run.counts.items())
            self.stdout.write(f"{name}{' (dry run)' if dry_run else ''}: {counts}")
