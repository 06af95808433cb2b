from django.core.management.base import BaseCommand, CommandError

from consent.audit import audit_verify
from consent.audit_checkpoints import (
    audit_checkpoint_latest,
    audit_checkpoint_read,
    audit_checkpoint_write,
)


class Command(BaseCommand):
    help = (
        "Verify the audit trail's hash chain against the latest signed checkpoint (kept outside "
        "the database); report the first broken link, a rewrite or a truncation. "
        "--checkpoint writes a new checkpoint once the trail verifies."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--checkpoint",
            action="store_true",
            help="after a successful check, write (and email) a new signed checkpoint",
        )
        parser.add_argument(
            "--against", metavar="FILE", help="check against this checkpoint file instead"
        )

    def handle(self, *args, checkpoint: bool, against: str | None, **options):
        if against:
            anchor = audit_checkpoint_read(against)
            if anchor is None:
                raise CommandError(f"{against} is not a checkpoint signed by this portal.")
        else:
            anchor, invalid = audit_checkpoint_latest()
            if invalid:
                names = ", ".join(path.name for path in invalid)
                raise CommandError(f"Checkpoint files that do not verify (edited?): {names}.")
        report = audit_verify(checkpoint=anchor)
        if not report.ok:
            where = (
                f"event {report.first_broken_id}" if report.first_broken_id else "the chain's end"
            )
            raise CommandError(
                f"BROKEN at {where}: {report.problem} ({report.checked} events verified before it)."
            )
        line = f"OK: {report.checked} events, chain intact"
        if anchor:
            line += (
                f"; matches the signed checkpoint of {anchor['at']} "
                f"(event {anchor['head_event_id']}, {anchor['count']} events)"
            )
        else:
            line += "; no signed checkpoint to check it against yet"
        self.stdout.write(line + ".")
        if checkpoint:
            written = audit_checkpoint_write()
            if written:
                self.stdout.write(f"Checkpoint written: {written[1]}")
